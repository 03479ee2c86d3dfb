"""The billing service over real NATS and PostgreSQL: it seeds the demo tariffs, a closed
period issues invoices and announces them durably, a request answers with what it wrote,
late heat yields a correction, and the period closer bills a month once allocation passes
its end, exactly once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import asyncpg
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from balans_billing.__main__ import serve
from balans_billing.closer import close_due_periods
from balans_billing.demo import DEMO_TARIFFS_FROM, demo_tariffs, seed_demo_tariffs
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.settings import BillingSettings
from balans_billing.storage import invoice_msg_id
from balans_core.service import ServiceContext
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import (
    AllocationComputed,
    BillingReply,
    BillingRequest,
    InvoiceIssued,
    PeriodClosed,
)

FEB = month_bounds(2026, 2, "Europe/Chisinau")
JAN = month_bounds(2026, 1, "Europe/Chisinau")
SITE = SiteSpec(code="t-billing-svc", name="Svc", address="str. Svc 2", latitude=47, longitude=29)


async def heat_only_block(
    conn: asyncpg.Connection, code: str, index: int, kwh: float, start: datetime, hours: int
) -> int:
    """A 1a block of 4 flats with heat only, ``kwh`` allocated to each flat in each of
    ``hours`` hours from ``start``."""
    spec = regular_building(
        code=code,
        name=f"Block {code}",
        address=f"str. Svc {index}",
        site=SITE,
        layout="1a",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=index,
        multi_utility_every=1000,
    )
    bid = await write_building(conn, spec, KeyVault())
    assert bid is not None
    await conn.execute(
        """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
               common_kwh, method)
           select $1, f.id, $2::timestamptz + h * interval '1 hour', $3, $3, 0, 'test'
           from flats f, generate_series(0, $4 - 1) h where f.building_id = $1""",
        bid,
        start,
        kwh,
        hours,
    )
    return bid


@pytest.fixture(scope="module")
async def building_id(database_url: str) -> int:
    """2 Gcal allocated to each of 4 flats in February (no tariffs: the service seeds them)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await heat_only_block(conn, "t-bill-svc", 72, 232.6, FEB[0], 10)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def service(
    database_url: str, module_nats_url: str, building_id: int
) -> AsyncIterator[Client]:
    """The service running in this event loop, and a client connection to talk to it."""
    settings = BillingSettings(
        database_url=database_url, nats_url=module_nats_url, period_check_interval_s=0.2
    )
    ctx = ServiceContext(name="billing", settings=settings)
    task = asyncio.create_task(serve(ctx, settings))
    for _ in range(200):
        if ctx.ready or task.done():
            break
        await asyncio.sleep(0.05)
    assert ctx.ready, task
    nc = await nats.connect(module_nats_url)
    try:
        yield nc
    finally:
        await nc.close()
        ctx.stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


async def collect(nc: Client) -> list[InvoiceIssued]:
    """Subscribe to February's invoice announcements; the list fills as they arrive."""
    got: list[InvoiceIssued] = []

    async def on_msg(msg: Msg) -> None:
        announced = InvoiceIssued.model_validate_json(msg.data)
        if announced.period_start == FEB[0]:
            got.append(announced)

    await nc.subscribe(subjects.INVOICES_ALL, cb=on_msg)
    return got


async def wait_for(got: list[InvoiceIssued], count: int) -> None:
    for _ in range(200):
        if len(got) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(got)} of {count} announcements")


async def test_service_seeds_demo_tariffs_once(service: Client, database_url: str) -> None:
    """In development the service stored one demo tariff per utility; seeding again adds none."""
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch("select utility, effective_from from tariffs")
        again = await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
    finally:
        await conn.close()
    assert sorted((r["utility"], r["effective_from"]) for r in stored) == sorted(
        (spec.utility, DEMO_TARIFFS_FROM) for spec in demo_tariffs(DEMO_TARIFFS_FROM)
    )
    assert again == 0


@pytest.mark.parametrize(
    ("environment", "demo_tariffs", "seeds"),
    [("development", None, True), ("production", None, False), ("production", True, True),
     ("development", False, False)],
)  # fmt: skip
def test_demo_tariffs_only_in_development(
    environment: str, demo_tariffs: bool | None, seeds: bool
) -> None:
    """Demo tariffs follow BALANS_ENVIRONMENT unless BALANS_DEMO_TARIFFS says otherwise."""
    settings = BillingSettings(environment=environment, demo_tariffs=demo_tariffs)
    assert settings.seeds_demo_tariffs is seeds


async def test_period_closed_issues_and_announces(service: Client, building_id: int) -> None:
    """PeriodClosed on JetStream: four invoices of 2 Gcal heat + operations, announced."""
    got = await collect(service)
    event = PeriodClosed(building_id=building_id, period_start=FEB[0], period_end=FEB[1])
    await service.jetstream().publish(
        subjects.period_closed(building_id), event.model_dump_json().encode()
    )
    await wait_for(got, 4)
    assert {(m.kind, m.total_mdl) for m in got} == {("invoice", "2269.00")}  # 2 x 1122 + 25


async def test_invoices_stay_in_the_stream(service: Client, building_id: int) -> None:
    """A subscriber arriving after the fact still reads each February invoice once."""
    got: list[InvoiceIssued] = []

    async def on_msg(msg: Msg) -> None:
        got.append(InvoiceIssued.model_validate_json(msg.data))

    sub = await service.jetstream().subscribe(
        subjects.INVOICES_ALL, cb=on_msg, stream=subjects.INVOICES_STREAM, ordered_consumer=True
    )
    try:
        info = await service.jetstream().stream_info(subjects.INVOICES_STREAM)
        for _ in range(200):
            if len(got) >= info.state.messages:
                break
            await asyncio.sleep(0.05)
    finally:
        await sub.unsubscribe()
    feb = [m for m in got if m.period_start == FEB[0] and m.kind == "invoice"]
    assert len(feb) == len({m.invoice_id for m in feb}) >= 4


async def test_request_reply_is_idempotent(service: Client, building_id: int) -> None:
    """Asking again for the same period writes nothing; a bad request gets a failed reply."""
    request = BillingRequest(building_id=building_id, period_start=FEB[0], period_end=FEB[1])
    msg = await service.request(subjects.BILLING_API, request.model_dump_json().encode(), 10)
    reply = BillingReply.model_validate_json(msg.data)
    assert (reply.status, reply.invoice_ids, reply.correction_ids) == ("done", [], [])
    bad = await service.request(subjects.BILLING_API, b'{"building_id": "x"}', 10)
    assert BillingReply.model_validate_json(bad.data).status == "failed"
    off = request.model_copy(update={"period_start": FEB[0] + timedelta(hours=1)})
    odd = await service.request(subjects.BILLING_API, off.model_dump_json().encode(), 10)
    assert "not the start of a month" in BillingReply.model_validate_json(odd.data).detail


async def test_late_heat_is_corrected(service: Client, building_id: int, database_url: str) -> None:
    """Late heat in an invoiced month, then AllocationComputed: one correction is announced."""
    conn = await asyncpg.connect(database_url)
    try:
        flat_id = await conn.fetchval(
            "select min(id) from flats where building_id = $1", building_id
        )
        await conn.execute(
            """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
                   common_kwh, method) values ($1, $2, $3, 1163, 1163, 0, 'late')""",
            building_id,
            flat_id,
            FEB[0] + timedelta(days=10),
        )
    finally:
        await conn.close()
    got = await collect(service)
    event = AllocationComputed(
        building_id=building_id,
        hour_from=FEB[0] + timedelta(days=10),
        hour_to=FEB[0] + timedelta(days=10),
        recomputation=True,
    )
    await service.jetstream().publish(
        subjects.allocation_computed(building_id), event.model_dump_json().encode()
    )
    await wait_for(got, 1)
    assert [(m.kind, m.total_mdl) for m in got] == [("correction", "1122.00")]
    assert got[0].corrects_id is not None


async def test_closer_bills_a_month_once_allocation_passes_its_end(
    service: Client, database_url: str
) -> None:
    """Allocation complete past January's end: the closer issues one set of January invoices,
    later passes (and a restarted closer) announce nothing more, December is never billed."""
    conn = await asyncpg.connect(database_url)
    try:
        # the last day of January and 6 h of February, 1 Gcal per flat-hour
        last_day = JAN[1] - timedelta(hours=24)
        bid = await heat_only_block(conn, "t-bill-closer", 73, 1163, last_day, 30)
        await conn.execute(
            "insert into allocation_watermarks (building_id, complete_until) values ($1, $2)",
            bid,
            JAN[1] + timedelta(hours=6),
        )
        for _ in range(200):
            invoices = await conn.fetch(
                "select period_start, total from invoices where building_id = $1", bid
            )
            if len(invoices) >= 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # two more closer passes
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            # a fresh closer, with no lateness allowance
            again = await close_due_periods(pool, timedelta(0))
        finally:
            await pool.close()
        invoices = await conn.fetch(
            "select period_start, kind, total from invoices where building_id = $1", bid
        )
        closures = await conn.fetch(
            "select period_start from billing_period_closures where building_id = $1", bid
        )
    finally:
        await conn.close()
    assert again == []
    assert [r["period_start"] for r in closures] == [JAN[0]]
    assert (
        sorted((r["period_start"], r["kind"], str(r["total"])) for r in invoices)
        == [
            (JAN[0], "invoice", "26953.00")  # 24 Gcal x 1122 + 25 operations
        ]
        * 4
    )


async def _announced_once(nc: Client, accounts: list[int]) -> bool:
    """Each account's subject holds exactly one message in INVOICES."""
    js = nc.jetstream()
    counts = []
    for account_id in accounts:
        subject = subjects.invoice(account_id)
        info = await js.stream_info(subjects.INVOICES_STREAM, subjects_filter=subject)
        counts.append((info.state.subjects or {}).get(subject, 0))
    return counts == [1] * len(accounts)


async def test_invoices_committed_before_a_crash_are_announced_once(
    service: Client, database_url: str
) -> None:
    """Issue 22, finding 6: billing died after committing a period's invoices and before
    announcing them. Here billing's own code commits them with no relay of this process
    involved (the writer is gone); the running service's relay, like a restarted billing,
    announces each invoice once. A relay that dies between JetStream's ack and marking the
    rows sends them again at its next pass: the stream still holds one message per invoice."""
    conn = await asyncpg.connect(database_url)
    try:
        bid = await heat_only_block(conn, "t-bill-crash", 74, 232.6, FEB[0], 10)
        issued = await bill_building(conn, bid, FEB[0], FEB[1])
        accounts = sorted(i.account_id for i in issued)
        assert len(accounts) == 4
        await eventually("each invoice announced once", lambda: _announced_once(service, accounts))
        ids = [invoice_msg_id(i.invoice_id) for i in issued]
        await conn.execute("update billing_outbox set sent_at = null where msg_id = any($1)", ids)
        await eventually("the resend marked sent", lambda: _all_sent(conn, ids))
    finally:
        await conn.close()
    assert await _announced_once(service, accounts)
    last = await service.jetstream().get_last_msg(
        subjects.INVOICES_STREAM, subjects.invoice(accounts[0])
    )
    assert InvoiceIssued.model_validate_json(last.data or b"").account_id == accounts[0]


async def _all_sent(conn: asyncpg.Connection, msg_ids: list[str]) -> bool:
    unsent = await conn.fetchval(
        "select count(*) from billing_outbox where msg_id = any($1) and sent_at is null", msg_ids
    )
    return unsent == 0
