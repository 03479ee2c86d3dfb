"""New tariff versions through the API: billing validates and stores them over real NATS;
a version from a date ends the one open then; a refusal names each problem of the document
and stores nothing; overlapping dates answer 409; only admins may."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.tariff_requests import serve_tariffs
from balans_core.nats import connect_nats

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "correct-horse-battery"
HEAT = {
    "utility": "heat",
    "supplier": "default",
    "unit": "Gcal",
    "fixed_per_month": "0",
    "blocks": [{"from_qty": "0", "to_qty": None, "price": "1300.00"}],
}


@pytest.fixture(scope="module")
async def http(database_url: str, nats_url: str) -> AsyncIterator[dict[str, Any]]:
    """The app on the demo tariffs (no city: tariffs need none), billing answering over
    NATS; an admin's and an operator's headers."""
    conn = await asyncpg.connect(database_url)
    try:
        await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
        for role in ("admin", "operator"):
            await create_user(conn, role, PASSWORD, role, None)
    finally:
        await conn.close()
    nc = await connect_nats(nats_url, "test-tariffs")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    await serve_tariffs(nc, pool, "billing")
    app = create_app(ApiSettings(database_url=database_url), nats=nc)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            headers = {}
            for role in ("admin", "operator"):
                token = await client.post(
                    "/api/v1/auth/token", data={"username": role, "password": PASSWORD}
                )
                headers[role] = {"Authorization": f"Bearer {token.json()['access_token']}"}
            yield {"client": client, "headers": headers, "max_payload": nc.max_payload}
    await nc.close()
    await pool.close()


async def _heat(client: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/tariffs?utility=heat&limit=1000", headers=headers)
    return sorted(response.json()["items"], key=lambda t: t["version"])


async def test_a_version_from_a_date_ends_the_open_one(http: dict[str, Any]) -> None:
    client, admin = http["client"], http["headers"]["admin"]
    before = await _heat(client, admin)
    response = await client.post(
        "/api/v1/tariffs", json={**HEAT, "effective_from": "2030-01-01"}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert response.json()["version"] == before[-1]["version"] + 1
    after = await _heat(client, admin)
    assert [(t["effective_from"], t["effective_to"]) for t in after[-2:]] == [
        (before[-1]["effective_from"], "2030-01-01"),
        ("2030-01-01", None),
    ]
    assert after[-2]["spec"]["effective_to"] == "2030-01-01"  # billing reads the spec
    audit = await client.get("/api/v1/audit?action=tariff.create", headers=admin)
    assert [a["target"] for a in audit.json()["items"]] == [
        f"tariff:heat/default/{after[-1]['version']}"
    ]


async def test_refusals_name_each_problem_and_store_nothing(http: dict[str, Any]) -> None:
    client, admin = http["client"], http["headers"]["admin"]
    before = await _heat(client, admin)
    bad = {
        **HEAT,
        "effective_from": "2031-01-01",
        "fixed_per_month": "-5",
        "blocks": [{"from_qty": "0", "to_qty": None, "price": "-1"}],
        "colour": "red",
    }
    response = await client.post("/api/v1/tariffs", json=bad, headers=admin)
    assert response.status_code == 422, response.text
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert paths == {"fixed_per_month", "blocks.0.price", "colour"}
    # a version begun before the open one's start overlaps it: 409, nothing stored
    early = await client.post(
        "/api/v1/tariffs", json={**HEAT, "effective_from": "2020-01-01"}, headers=admin
    )
    assert early.status_code == 409, early.text
    assert "overlaps" in early.json()["error"]["message"]
    operator = await client.post(
        "/api/v1/tariffs",
        json={**HEAT, "effective_from": "2032-01-01"},
        headers=http["headers"]["operator"],
    )
    assert operator.status_code == 403
    # larger than a NATS message may be: refused before billing is asked
    huge = await client.post(
        "/api/v1/tariffs", json={**HEAT, "note": "x" * http["max_payload"]}, headers=admin
    )
    assert huge.status_code == 422, huge.text
    assert "too large" in huge.json()["error"]["message"]
    assert await _heat(client, admin) == before
