"""A month closes for real: billing bills a building and announces its invoices through its
outbox, notify e-mails each account that has an address its month, in the resident's
language, with billing's PDF of the invoice attached (rendered over real NATS), to an SMTP
server (aiosmtpd) in this process on a real TCP port."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.documents import serve_documents
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.storage import OUTBOX
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_core.service import ServiceContext
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.eventually import eventually
from balans_devstack.processes import free_port
from balans_notify.__main__ import serve
from balans_notify.settings import NotifySettings
from balans_protocol.streams import ensure_streams

pytestmark = pytest.mark.asyncio(loop_scope="session")

MONTH = (2026, 2)
LANGUAGES = {"ro": "Factura nr.", "ru": "Счёт №"}  # each PDF's title


class Sink:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture(scope="module")
def nats_url(module_nats_url: str) -> str:
    """notify replays the invoice and alert streams from their start: this module's own
    server, so no other module's invoices reach it."""
    return module_nats_url


@pytest.fixture(scope="module")
async def billed(database_url: str) -> AsyncIterator[dict[str, dict[str, Any]]]:
    """February 2026 of the demo 1a building billed; a Romanian and a Russian resident with
    an address and a login; billing's announcements sent by its own relay."""
    await seed(database_url, KeyVault.from_hex(None))
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
        async with pool.acquire() as conn:
            building = await conn.fetchval("select id from buildings where code = 'demo-1a'")
            start, end = month_bounds(*MONTH, "Europe/Chisinau")
            await conn.execute(
                """insert into heat_allocation (building_id, flat_id, hour, measured_kwh,
                       common_kwh, total_kwh, method)
                   select f.building_id, f.id, h, 1.0, 0.5, 1.5, 'test' from flats f,
                          generate_series($2::timestamptz, $3, interval '1 hour') h
                   where f.building_id = $1 on conflict do nothing""",
                building,
                start,
                end - timedelta(hours=1),
            )
            await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
            issued = await bill_building(conn, building, start, end)
            residents: dict[str, dict[str, Any]] = {}
            for n, language in enumerate(LANGUAGES, start=1):
                invoice = await conn.fetchrow(
                    "select account_id, number from invoices where id = $1",
                    issued[n].invoice_id,
                )
                email = f"{language}@example.md"
                await conn.execute(
                    "update accounts set email = $2 where id = $1", invoice["account_id"], email
                )
                await conn.execute(
                    """insert into users (username, password_hash, role, account_id, language)
                       values ($1, 'not-a-login', 'consumer', $2, $3)""",
                    f"resident-{language}",
                    invoice["account_id"],
                    language,
                )
                residents[language] = {"email": email, "number": invoice["number"]}
        yield residents


async def test_monthly_email_carries_billings_pdf(
    database_url: str, nats_url: str, billed: dict[str, dict[str, Any]]
) -> None:
    sink = Sink()
    port = free_port()
    smtp = Controller(sink, hostname="127.0.0.1", port=port)
    smtp.start()
    nc = await connect_nats(nats_url, "test-notify-billing")
    await ensure_streams(nc.jetstream())
    settings = NotifySettings(
        database_url=database_url,
        nats_url=nats_url,
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=port,
        notify_invoice_consumer="notify-billing-test-invoices",
        notify_alert_email_consumer="notify-billing-test-alerts",
        notify_webhook_invoice_consumer="notify-billing-test-webhooks-invoices",
        notify_webhook_alert_consumer="notify-billing-test-webhooks-alerts",
    )
    ctx = ServiceContext(name="notify", settings=settings)
    notify = asyncio.create_task(serve(ctx, settings))
    try:
        async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as pool:
            await serve_documents(nc, pool, "billing")
            relay = OutboxRelay(pool, nc.jetstream(), OUTBOX, "billing")
            while await relay.send_pending():
                pass

            def mail(address: str) -> list[EmailMessage]:
                return [m for m in sink.messages if address in str(m["To"])]

            await eventually(
                "both residents' e-mails",
                lambda: all(mail(r["email"]) for r in billed.values()),
                timeout_s=90,
            )
    finally:
        ctx.stopping.set()
        await notify
        await nc.drain()
        smtp.stop()
    for language, title in LANGUAGES.items():
        [message] = mail(billed[language]["email"])
        [attachment] = list(message.iter_attachments())
        number = billed[language]["number"]
        assert attachment.get_filename() == f"invoice-{number}.pdf"
        pdf = PdfReader(io.BytesIO(attachment.get_content()))
        text = "".join(page.extract_text() for page in pdf.pages)
        assert title in text
        assert number in text
        body = message.get_body(("plain",))
        assert body is not None
        assert number in body.get_content()
