"""A resident opens an invoice and downloads its PDF: the api asks billing over real NATS
(billing owns invoices and renders them), in the language asked; another account's
invoice stays a 404, and without billing answering the api says 503."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from pypdf import PdfReader

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.documents import serve_documents
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.seed import seed

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "correct-horse-battery-staple"
JAN = (2026, 1)


@pytest.fixture(scope="module")
async def billed(database_url: str) -> AsyncIterator[dict[str, int]]:
    """January 2026 of the demo 1a building billed; a resident login for one account."""
    await seed(database_url, KeyVault.from_hex(None))
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        async with pool.acquire() as conn:
            building = await conn.fetchval("select id from buildings where code = 'demo-1a'")
            start, end = month_bounds(*JAN, "Europe/Chisinau")
            await conn.execute(
                """insert into heat_allocation (building_id, flat_id, hour, measured_kwh,
                       common_kwh, total_kwh, method)
                   select f.building_id, f.id, h, 1.0, 0.5, 1.5, 'test' from flats f,
                          generate_series($2::timestamptz, $3, interval '1 hour') h
                   where f.building_id = $1 on conflict do nothing""",
                building,
                start + timedelta(hours=16),  # data begins on the 1st at 17:00
                end - timedelta(hours=1),
            )
            await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
            issued = await bill_building(conn, building, start, end)
            mine, other = issued[0].invoice_id, issued[1].invoice_id
            account = await conn.fetchval("select account_id from invoices where id = $1", mine)
            await create_user(conn, "resident", PASSWORD, "consumer", account)
        yield {"mine": mine, "other": other}


async def _client(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")  # type: ignore[arg-type]


async def test_resident_gets_the_invoice_pdf_in_russian(
    database_url: str, nats_url: str, billed: dict[str, int]
) -> None:
    nc = await connect_nats(nats_url, "test-invoice-document")
    try:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as pool:
            await serve_documents(nc, pool, "billing")
            app = create_app(ApiSettings(database_url=database_url), nats=nc)
            async with app.router.lifespan_context(app), await _client(app) as http:
                token = (
                    await http.post(
                        "/api/v1/auth/token", data={"username": "resident", "password": PASSWORD}
                    )
                ).json()["access_token"]
                h = {"Authorization": f"Bearer {token}"}
                base = f"/api/v1/invoices/{billed['mine']}/document"
                listed = (await http.get("/api/v1/invoices", headers=h)).json()["items"]
                number = listed[0]["number"]
                assert number.startswith(f"{datetime.now(UTC).year}-")
                pdf = await http.get(base, params={"format": "pdf", "locale": "ru"}, headers=h)
                assert pdf.status_code == 200
                assert pdf.headers["content-type"] == "application/pdf"
                assert f'filename="invoice-{number}.pdf"' in pdf.headers["content-disposition"]
                text = " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
                for word in (f"Счёт № {number}", "Оплатить до", "Неполные данные", "728 из 744"):
                    assert word in " ".join(text.split()), word
                # the language of the reader's cookie when none is asked
                html = await http.get(base, headers={**h, "Cookie": "balans_lang=ro"})
                assert html.headers["content-type"].startswith("text/html")
                assert f"Factura nr. {number}" in html.text
                other = f"/api/v1/invoices/{billed['other']}/document"
                assert (await http.get(other, headers=h)).status_code == 404
                await nc.drain()
                assert (await http.get(base, headers=h)).status_code == 503
    finally:
        if nc.is_connected:
            await nc.close()
