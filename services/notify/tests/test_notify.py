"""notify against real servers: PostgreSQL and JetStream of the test stack, an SMTP server
(aiosmtpd) and an HTTP receiver, both in this process on real TCP ports.

A closed month is announced as billing announces it (``InvoiceIssued`` on the INVOICES
stream); the stream is shared by the session's test modules, so every check looks only at
this module's accounts, months and events."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import asyncpg
import nats
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope

from balans_core.service import ServiceContext
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.eventually import eventually
from balans_devstack.processes import free_port
from balans_notify import metrics
from balans_notify.__main__ import serve
from balans_notify.settings import NotifySettings
from balans_protocol import subjects
from balans_protocol.messages import AlertMessage, InvoiceIssued

MONTH = date(2025, 11, 1)  # a closed month, far from any other module's invoices
TZ = "Europe/Chisinau"


@dataclass
class SmtpSink:
    """Accepts every message, except that it refuses the first ``refuse`` DATA commands
    with a temporary error (451), as a busy server does."""

    refuse: int = 1
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's hook name
        if self.refuse > 0:
            self.refuse -= 1
            return "451 try again later"
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(message_from_bytes(content, policy=policy.default))
        return "250 OK"

    def monthly(self, account_id: int) -> list[EmailMessage]:
        key = f"<monthly-{account_id}-{MONTH:%Y-%m}@"
        return [m for m in self.messages if str(m["Message-ID"]).startswith(key)]


@dataclass
class City:
    database_url: str
    ro_account: int
    ru_account: int
    invoices: dict[int, int]  # account -> invoice id
    ro_meter: int  # a meter of the Romanian resident's flat


def _local(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ))


@pytest.fixture(scope="module")
async def city(database_url: str) -> AsyncIterator[City]:
    """Two accounts with an e-mail and a resident's login each (Romanian, Russian), heat for
    the month and the one before, and the month's invoices."""
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """select a.id, a.flat_id, f.building_id,
                      (select min(m.id) from meters m where m.flat_id = f.id) as meter_id
               from accounts a
               join flats f on f.id = a.flat_id join buildings b on b.id = f.building_id
               where b.code = 'ref-2a'
                 and exists (select 1 from meters m where m.flat_id = f.id)
               order by a.id limit 2"""
        )
        start, end = _local(MONTH), _local(date(2025, 12, 1))
        await conn.execute(
            """insert into heat_allocation (building_id, flat_id, hour, measured_kwh,
                                            common_kwh, total_kwh, method)
               select $1, f, h, 1.0, 0.5, 1.5, 'test' from unnest($2::int[]) f,
               generate_series($3::timestamptz, $4::timestamptz - interval '1 hour',
                               '1 hour') h""",
            rows[0]["building_id"],
            [r["flat_id"] for r in rows],
            _local(date(2025, 10, 1)),
            end,
        )
        invoices = {}
        for n, (row, language) in enumerate(zip(rows, ("ro", "ru"), strict=True), start=1):
            await conn.execute(
                "update accounts set email = $2 where id = $1",
                row["id"],
                f"resident{n}@example.md",
            )
            await conn.execute(
                """insert into users (username, password_hash, role, account_id, language)
                   values ($1, 'not-a-login', 'consumer', $2, $3)""",
                f"resident{n}",
                row["id"],
                language,
            )
            invoices[row["id"]] = await conn.fetchval(
                """insert into invoices (account_id, building_id, period_start, period_end,
                     kind, total, issuer, number, due_on)
                   values ($1, $2, $3, $4, 'invoice', 1442.89, 'test', $5, '2025-12-25')
                   returning id""",
                row["id"],
                row["building_id"],
                start,
                end,
                f"2025-00000{n}",
            )
        yield City(database_url, rows[0]["id"], rows[1]["id"], invoices, rows[0]["meter_id"])
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[SmtpSink, int]]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@dataclass
class Notify:
    """notify's own ``serve`` running in this process; ``restart`` stops and starts it."""

    settings: NotifySettings
    task: asyncio.Task[None] | None = None
    ctx: ServiceContext | None = None

    async def start(self) -> None:
        self.ctx = ServiceContext(name="notify", settings=self.settings)
        self.task = asyncio.create_task(serve(self.ctx, self.settings))
        ctx = self.ctx
        await eventually("notify ready", lambda: ctx.ready, timeout_s=30)

    async def stop(self) -> None:
        assert self.ctx is not None
        assert self.task is not None
        self.ctx.stopping.set()
        await self.task


@pytest.fixture(scope="module")
async def notify(city: City, nats_url: str, smtp: tuple[SmtpSink, int]) -> AsyncIterator[Notify]:
    settings = NotifySettings(
        database_url=city.database_url,
        nats_url=nats_url,
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=smtp[1],
        notify_smtp_backoff_s=0.05,
        notify_attach_invoice_pdf=False,  # billing's PDF: tests/test_notify_billing.py
        notify_portal_url="https://portal.example.md",
        notify_webhook_backoff_s=0.1,
        notify_webhook_poll_s=0.05,
        notify_invoice_consumer="notify-test-invoices",
        notify_webhook_invoice_consumer="notify-test-webhooks-invoices",
        notify_webhook_alert_consumer="notify-test-webhooks-alerts",
    )
    service = Notify(settings)
    await service.start()
    try:
        yield service
    finally:
        await service.stop()


async def _announce(nats_url: str, subject: str, payload: bytes) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(subject, payload)
    finally:
        await nc.close()


def _issued(city: City, account_id: int) -> InvoiceIssued:
    return InvoiceIssued(
        invoice_id=city.invoices[account_id],
        account_id=account_id,
        period_start=_local(MONTH),
        period_end=_local(date(2025, 12, 1)),
        total_mdl="1442.89",
    )


def _count(outcome: str, kind: str = "monthly") -> float:
    return metrics.EMAILS.labels(kind, outcome)._value.get()


async def test_monthly_email_once_per_account_in_its_language(
    city: City, notify: Notify, smtp: tuple[SmtpSink, int], nats_url: str
) -> None:
    sink, _ = smtp
    for account in (city.ro_account, city.ru_account):
        await _announce(
            nats_url, subjects.invoice(account), _issued(city, account).model_dump_json().encode()
        )
    await eventually(
        "both monthly e-mails received",
        lambda: all(sink.monthly(a) for a in (city.ro_account, city.ru_account)),
        timeout_s=90,  # the shared stream may hold other modules' invoices first
    )
    assert metrics.SMTP_ERRORS._value.get() >= 1  # the sink's 451 was retried
    ro, ru = sink.monthly(city.ro_account)[0], sink.monthly(city.ru_account)[0]
    assert ro["Subject"] == "Căldura dumneavoastră în noiembrie 2025"
    assert ru["Subject"] == "Ваше тепло за ноябрь 2025"
    assert "resident1@example.md" in ro["To"]
    ro_text, ru_text = ro.get_content(), ru.get_content()
    # 30 days x 24 h x 1.5 kWh, in each locale's format; the previous month is 31 days
    # of which the first 30 are compared
    assert "Luna aceasta: 1.080,0\u00a0kWh, 30 zile cu date" in ro_text
    assert "Luna precedentă: 1.080,0\u00a0kWh (0,0 %), 30 zile cu date" in ro_text
    assert "Aceeași lună anul trecut: nu sunt date" in ro_text
    assert "Factura 2025-000001: 1.442,89\u00a0MDL" in ro_text
    assert f"https://portal.example.md/my/invoices/{city.invoices[city.ro_account]}" in ro_text
    assert "https://portal.example.md/my/settings" in ro_text  # the opt-out
    assert "Этот месяц: 1\u00a0080,0\u00a0кВт·ч" in ru_text
    assert "Счёт 2025-000002" in ru_text

    # an announcement of an invoice this database does not hold is refused, no e-mail
    unknown = _count("unknown_invoice")
    stray = _issued(city, city.ro_account).model_copy(update={"invoice_id": 999_999})
    await _announce(nats_url, subjects.invoice(city.ro_account), stray.model_dump_json().encode())
    await eventually("the unknown invoice seen", lambda: _count("unknown_invoice") > unknown)

    # the announcement again (billing's relay resending), then after a restart of notify
    duplicates = _count("duplicate")
    await _announce(
        nats_url,
        subjects.invoice(city.ro_account),
        _issued(city, city.ro_account).model_dump_json().encode(),
    )
    await eventually("the resend seen", lambda: _count("duplicate") > duplicates)
    await notify.stop()
    await notify.start()
    await _announce(
        nats_url,
        subjects.invoice(city.ru_account),
        _issued(city, city.ru_account).model_dump_json().encode(),
    )
    await eventually(
        "the resend after the restart seen", lambda: _count("duplicate") > duplicates + 1
    )
    assert len(sink.monthly(city.ro_account)) == 1
    assert len(sink.monthly(city.ru_account)) == 1
    conn = await asyncpg.connect(city.database_url)
    try:
        sent = await conn.fetch("select account_id, language from notify_emails order by 1")
    finally:
        await conn.close()
    assert [(r["account_id"], r["language"]) for r in sent] == [
        (city.ro_account, "ro"),
        (city.ru_account, "ru"),
    ]


@dataclass
class Receiver:
    """An HTTP endpoint on a real port: answers 500 to the first ``fail`` deliveries of each
    event id, 200 after; keeps what it got."""

    fail: int = 2
    got: list[tuple[dict[str, str], bytes, int]] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)
        }
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        event_id = json.loads(body)["id"]
        earlier = sum(1 for _, b, _ in self.got if json.loads(b)["id"] == event_id)
        status = 500 if earlier < self.fail else 200
        self.got.append((headers, body, status))
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        writer.close()

    def of(self, event_id: str) -> list[tuple[dict[str, str], bytes, int]]:
        return [g for g in self.got if json.loads(g[1])["id"] == event_id]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, int]]:
    endpoint = Receiver()
    server = await asyncio.start_server(endpoint.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield endpoint, port
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()


async def test_webhook_signed_and_retried_after_500(
    city: City, notify: Notify, receiver: tuple[Receiver, int], nats_url: str
) -> None:
    endpoint, port = receiver
    secret = "whsec_test-secret"
    conn = await asyncpg.connect(city.database_url)
    try:
        subscription = await conn.fetchval(
            """insert into webhook_subscriptions (url, events, secret, created_by)
               values ($1, array['alert.opened', 'invoice.issued'], $2, 'test') returning id""",
            f"http://127.0.0.1:{port}/hooks",
            secret,
        )
        alert = AlertMessage(
            alert_id=987654321,
            kind="leak",
            state="open",
            building_id=1,
            opened_at=datetime(2025, 11, 20, tzinfo=ZoneInfo("UTC")),
            summary="water flows through the building meter with every flat closed",
        )
        await _announce(nats_url, subjects.alert("leak"), alert.model_dump_json().encode())
        event_id = "alert.opened.987654321"

        async def delivery() -> asyncpg.Record | None:
            return await conn.fetchrow(
                """select state, attempts, last_status from webhook_deliveries
                   where subscription_id = $1 and event_id = $2 and state <> 'pending'""",
                subscription,
                event_id,
            )

        await eventually("delivered after two 500s", delivery, timeout_s=90)
        row = await delivery()
    finally:
        await conn.close()
    assert [status for *_, status in endpoint.of(event_id)] == [500, 500, 200]
    headers, body, _ = endpoint.of(event_id)[-1]
    assert headers["balans-event"] == "alert.opened"
    parts = dict(p.split("=", 1) for p in headers["balans-signature"].split(","))
    expected = hmac.new(
        secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert json.loads(body)["data"]["summary"].startswith("water flows")
    assert row is not None
    assert dict(row) == {"state": "delivered", "attempts": 3, "last_status": 200}


async def test_resident_told_of_an_alert_on_its_flat_once(
    city: City, notify: Notify, smtp: tuple[SmtpSink, int], nats_url: str
) -> None:
    sink, _ = smtp

    def alert(alert_id: int, kind: str, meter_id: int | None) -> bytes:
        return (
            AlertMessage(
                alert_id=alert_id,
                kind=kind,
                state="open",
                building_id=1,
                meter_id=meter_id,
                opened_at=datetime(2025, 11, 20, 3, tzinfo=ZoneInfo("UTC")),
                summary="the flat used water every night, unlike flats 2 and 3",
            )
            .model_dump_json()
            .encode()
        )

    def mails() -> list[EmailMessage]:
        return [m for m in sink.messages if str(m["Message-ID"]).startswith("<alert-87654321-")]

    skipped = _count("not_for_residents", "alert")
    await _announce(nats_url, subjects.alert("leak"), alert(87654320, "leak", None))
    await _announce(
        nats_url, subjects.alert("consumer_leak"), alert(87654321, "consumer_leak", city.ro_meter)
    )
    await eventually("the alert e-mail received", mails, timeout_s=90)
    duplicates = _count("duplicate", "alert")
    await _announce(
        nats_url, subjects.alert("consumer_leak"), alert(87654321, "consumer_leak", city.ro_meter)
    )
    await eventually("the resend seen", lambda: _count("duplicate", "alert") > duplicates)
    assert _count("not_for_residents", "alert") > skipped  # the building's leak: no e-mail
    [mail] = mails()
    assert mail["Subject"] == "Alertă: o posibilă scurgere în apartamentul dumneavoastră"
    assert "resident1@example.md" in mail["To"]
    text = mail.get_content()
    assert "verificați robinetele" in text
    assert "flats 2 and 3" not in text  # balance's summary compares with neighbours
