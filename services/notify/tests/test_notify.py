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
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
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
from balans_protocol.messages import (
    AlertMessage,
    CommandFinished,
    InvoiceIssued,
    ReadingsStored,
)

READINGS_CONSUMER = "notify-test-webhooks-readings"
READINGS_WINDOW_S = 6.0
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
    ru_meter: int  # a meter of the Russian resident's flat


def _local(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(TZ))


@pytest.fixture(scope="module")
def nats_url(module_nats_url: str) -> str:
    """notify replays the invoice and alert streams from their start: this module's own
    server, so no other module's invoices reach it."""
    return module_nats_url


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
        yield City(
            database_url,
            rows[0]["id"],
            rows[1]["id"],
            invoices,
            rows[0]["meter_id"],
            rows[1]["meter_id"],
        )
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
        notify_alert_email_consumer="notify-test-alert-emails",
        notify_valve_email_consumer="notify-test-valve-emails",
        notify_webhook_readings_consumer=READINGS_CONSUMER,
        notify_readings_webhook_window_s=READINGS_WINDOW_S,
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


def _mails(sink: SmtpSink, prefix: str) -> list[EmailMessage]:
    return [m for m in sink.messages if str(m["Message-ID"]).startswith(prefix)]


async def test_resident_told_of_a_closed_valve_on_its_flat_once(
    city: City, notify: Notify, smtp: tuple[SmtpSink, int], nats_url: str
) -> None:
    sink, _ = smtp

    def finished(command_id: str, action: str, status: str) -> bytes:
        at = datetime(2025, 11, 21, 9, tzinfo=UTC)
        return (
            CommandFinished(
                command_id=command_id,
                meter_id=city.ro_meter,
                action=action,  # type: ignore[arg-type]
                status=status,  # type: ignore[arg-type]
                requested_at=at,
                finished_at=at,
            )
            .model_dump_json()
            .encode()
        )

    skipped = _count("not_for_residents", "valve")
    subject = subjects.command_finished(city.ro_meter)
    await _announce(nats_url, subject, finished("c0ffee01", "valve_close", "timeout"))
    await _announce(nats_url, subject, finished("c0ffee02", "valve_open", "done"))
    await _announce(nats_url, subject, finished("c0ffee03", "valve_close", "done"))
    await eventually(
        "the valve e-mail received", lambda: _mails(sink, "<valve-c0ffee03-"), timeout_s=90
    )
    duplicates = _count("duplicate", "valve")
    await _announce(nats_url, subject, finished("c0ffee03", "valve_close", "done"))
    await eventually("the resend seen", lambda: _count("duplicate", "valve") > duplicates)
    # a command that failed, and an opened valve, tell nobody
    assert _count("not_for_residents", "valve") >= skipped + 2
    assert not _mails(sink, "<valve-c0ffee01-")
    assert not _mails(sink, "<valve-c0ffee02-")
    [mail] = _mails(sink, "<valve-c0ffee03-")
    assert mail["Subject"] == "Robinetul apartamentului dumneavoastră a fost închis"
    assert "resident1@example.md" in mail["To"]  # the flat's resident, nobody else
    assert "a fost închis la" in mail.get_content()


async def test_alert_goes_to_the_account_holding_the_flat_on_its_first_hour(
    city: City, notify: Notify, smtp: tuple[SmtpSink, int], nats_url: str
) -> None:
    """The Russian resident moves out on 15 January 2026, the flat is vacant until a new
    tenant (English) moves in on 1 February: an alert is told to whoever held the flat on
    its first hour, and to nobody while the flat was vacant."""
    sink, _ = smtp
    conn = await asyncpg.connect(city.database_url)
    try:
        flat = await conn.fetchval(
            "update accounts set closed_on = '2026-01-15' where id = $1 returning flat_id",
            city.ru_account,
        )
        tenant = await conn.fetchval(
            """insert into accounts (number, holder_name, flat_id, email, opened_on)
               values ('NOTIFY-NEW-TENANT', 'New Tenant', $1, 'tenant@example.md',
                       '2026-02-01') returning id""",
            flat,
        )
        await conn.execute(
            """insert into users (username, password_hash, role, account_id, language)
               values ('new-tenant', 'not-a-login', 'consumer', $1, 'en')""",
            tenant,
        )
    finally:
        await conn.close()

    def alert(alert_id: int, first_hour: datetime) -> bytes:
        return (
            AlertMessage(
                alert_id=alert_id,
                kind="consumer_leak",
                state="open",
                building_id=1,
                meter_id=city.ru_meter,
                opened_at=datetime(2026, 2, 20, tzinfo=UTC),
                first_hour=first_hour,
                summary="water every night",
            )
            .model_dump_json()
            .encode()
        )

    vacant = _count("vacant", "alert")
    subject = subjects.alert("consumer_leak")
    await _announce(nats_url, subject, alert(76543210, datetime(2026, 1, 10, tzinfo=UTC)))
    await _announce(nats_url, subject, alert(76543211, datetime(2026, 1, 20, tzinfo=UTC)))
    # 1 February 00:30 in Chisinau is still 31 January in UTC: the site's day counts
    await _announce(nats_url, subject, alert(76543212, datetime(2026, 1, 31, 22, 30, tzinfo=UTC)))
    await eventually(
        "the old and the new holder told",
        lambda: _mails(sink, "<alert-76543210-") and _mails(sink, "<alert-76543212-"),
        timeout_s=90,
    )
    await eventually("the vacant flat seen", lambda: _count("vacant", "alert") > vacant)
    [before] = _mails(sink, "<alert-76543210-")
    [after] = _mails(sink, "<alert-76543212-")
    assert "resident2@example.md" in before["To"]
    assert before["Subject"].startswith("Оповещение")
    assert "tenant@example.md" in after["To"]
    assert after["Subject"] == "Alert on your flat: a possible leak in your flat"
    assert not _mails(sink, "<alert-76543211-")


async def test_readings_stored_webhook_once_per_building_per_window(
    city: City, notify: Notify, receiver: tuple[Receiver, int], nats_url: str
) -> None:
    endpoint, port = receiver
    endpoint.fail = 0
    buildings = (990001, 990002)  # no other module's announcements are of these
    nc = await nats.connect(nats_url)
    conn = await asyncpg.connect(city.database_url)
    try:
        await conn.execute(
            """insert into webhook_subscriptions (url, events, secret, created_by)
               values ($1, array['readings.stored'], 'whsec_readings', 'test')""",
            f"http://127.0.0.1:{port}/readings",
        )
        js = nc.jetstream()

        async def caught_up() -> bool:
            info = await js.consumer_info(subjects.EVENTS_STREAM, READINGS_CONSUMER)
            return info.num_pending == 0 and info.num_ack_pending == 0

        # the session's earlier readings announcements are behind us, and the window has
        # time left for three announcements
        await eventually("the readings consumer caught up", caught_up, timeout_s=90)
        left = READINGS_WINDOW_S - time.time() % READINGS_WINDOW_S
        if left < READINGS_WINDOW_S / 2:
            await asyncio.sleep(left)

        for building, hour, rows in ((990001, 3, 10), (990001, 1, 5), (990002, 7, 2)):
            at = datetime(2026, 1, 5, hour, tzinfo=UTC)
            message = ReadingsStored(building_id=building, hour_from=at, hour_to=at, rows=rows)
            await js.publish(subjects.readings_stored(building), message.model_dump_json().encode())

        def got(building: int) -> list[dict[str, object]]:
            bodies = [json.loads(body) for _, body, _ in endpoint.got]
            return [b["data"] for b in bodies if b["data"]["building_id"] == building]

        await eventually(
            "one delivery per building", lambda: all(got(b) for b in buildings), timeout_s=60
        )
        delivered = await conn.fetch(
            """select payload -> 'data' ->> 'building_id' as building, state
               from webhook_deliveries where event = 'readings.stored'
                 and (payload -> 'data' ->> 'building_id')::int = any($1::int[])""",
            list(buildings),
        )
    finally:
        await conn.close()
        await nc.close()
    assert sorted((r["building"], r["state"]) for r in delivered) == [
        ("990001", "delivered"),
        ("990002", "delivered"),
    ]
    [first] = got(990001)
    assert (first["hour_from"], first["hour_to"], first["rows"]) == (
        "2026-01-05T01:00:00+00:00",
        "2026-01-05T03:00:00+00:00",
        15,
    )
    [second] = got(990002)
    assert second["rows"] == 2
    _, body, _ = endpoint.got[-1]
    assert json.loads(body)["type"] == "readings.stored"
