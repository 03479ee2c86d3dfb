"""Implausible times that got past ingest (rows from before its check, a forged event) stop
in depth: allocation's watermark never passes the present hour, allocation ignores events
outside the readings window, and billing never closes or bills a month that has not ended,
whatever the watermark says."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from prometheus_client import REGISTRY

from balans_allocation.allocator import OUTBOX, floor_hour, on_readings_stored
from balans_allocation.handlers import compute_batch
from balans_allocation.settings import AllocationSettings
from balans_billing.closer import close_due_periods
from balans_billing.invoicing import bill_building
from balans_billing.periods import PeriodError, month_bounds
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_protocol.messages import ReadingsStored
from balans_protocol.streams import ensure_streams

HOUR = timedelta(hours=1)
LATENESS = timedelta(hours=3)
LOOKAROUND = 12
TZ = "Europe/Chisinau"
SITE = SiteSpec(code="t-depth", name="t", address="t", latitude=47.0, longitude=28.8)
_numbers = itertools.count(300)


async def _building(conn: asyncpg.Connection) -> int:
    index = next(_numbers)
    spec = regular_building(
        code=f"t-depth-{index}", name="t", address="t", site=SITE, layout="1a", floors=2,
        flats_per_floor=(2,), risers_per_entrance=(2,), index=index, multi_utility_every=1000,
    )  # fmt: skip
    building_id = await write_building(conn, spec, KeyVault())
    assert building_id is not None
    return building_id


async def _registers(conn: asyncpg.Connection, building_id: int, hours: list[datetime]) -> None:
    """A register of every channel of the building at each of ``hours`` (+1 pulse an hour),
    straight into the table, as rows stored before ingest checked times would be."""
    channels = await conn.fetch(
        """select c.module_serial, c.input from channels c join meters m on m.id = c.meter_id
           where m.building_id = $1""",
        building_id,
    )
    await conn.copy_records_to_table(
        "pulse_readings",
        records=[
            (c["module_serial"], c["input"], hour, 1000 + i)
            for c in channels
            for i, hour in enumerate(hours)
        ],
        columns=["module_serial", "input", "ts", "count"],
    )


async def test_watermark_never_passes_the_present(database_url: str) -> None:
    """Every channel reported the last 6 hours and, impossibly, a month ahead: the
    watermark stops at the present hour and no hour after it is allocated."""
    now_hour = floor_hour(datetime.now(UTC))
    start = now_hour - 6 * HOUR
    conn = await asyncpg.connect(database_url)
    try:
        building_id = await _building(conn)
        hours = [start + h * HOUR for h in range(7)]
        await _registers(conn, building_id, [*hours, now_hour + 30 * 24 * HOUR])
        await on_readings_stored(conn, building_id, start, LATENESS, LOOKAROUND)
        mark = await conn.fetchval(
            "select complete_until from allocation_watermarks where building_id = $1",
            building_id,
        )
        last_hour = await conn.fetchval(
            "select max(hour) from heat_allocation where building_id = $1", building_id
        )
    finally:
        await conn.close()
    assert now_hour <= mark <= datetime.now(UTC)
    assert last_hour < mark


@pytest.mark.parametrize(
    "hour_from",
    [datetime(1970, 1, 2, tzinfo=UTC), datetime(2106, 1, 1, tzinfo=UTC)],
    ids=["1970", "2106"],
)
async def test_allocation_ignores_events_outside_the_window(
    database_url: str, nats_url: str, hour_from: datetime
) -> None:
    """A ReadingsStored from 1970 or 2106 is acked (not failed), counted, and computes
    nothing: no arrays for centuries of hours."""
    check = "too_old" if hour_from.year == 1970 else "future"
    metric = "balans_allocation_refused_events_total"
    before = REGISTRY.get_sample_value(metric, {"check": check}) or 0.0
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    nc = await connect_nats(nats_url, "depth-test")
    try:
        async with pool.acquire() as conn:
            building_id = await _building(conn)
            await _registers(conn, building_id, [floor_hour(datetime.now(UTC)) - 2 * HOUR])
        event = ReadingsStored(
            building_id=building_id, hour_from=hour_from, hour_to=hour_from, rows=1
        )
        settings = AllocationSettings(database_url=database_url, nats_url=nats_url)
        relay = OutboxRelay(pool, nc.jetstream(), OUTBOX, "allocation")
        failures = await compute_batch([event], pool, relay, settings)
        async with pool.acquire() as conn:
            computed = await conn.fetchval(
                "select count(*) from heat_allocation where building_id = $1", building_id
            )
    finally:
        await nc.close()
        await pool.close()
    assert failures == {}
    assert computed == 0
    assert (REGISTRY.get_sample_value(metric, {"check": check}) or 0.0) - before == 1


def _local_month(at: datetime, months_back: int) -> tuple[datetime, datetime]:
    local = at.astimezone(ZoneInfo(TZ))
    index = local.year * 12 + local.month - 1 - months_back
    return month_bounds(index // 12, index % 12 + 1, TZ)


async def test_closer_never_closes_a_month_that_has_not_ended(
    database_url: str, nats_url: str
) -> None:
    """Allocation began three months ago and the watermark says a year ahead (as one
    future-dated reading once made it): the closer closes the months that ended at least
    the lateness allowance ago, never the current or a future one, and billing refuses to
    invoice the current month when asked directly."""
    now = datetime.now(UTC)
    first = _local_month(now, 3)
    current = _local_month(now, 0)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    nc = await connect_nats(nats_url, "depth-closer-test")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        async with pool.acquire() as conn:
            building_id = await _building(conn)
            flat_id = await conn.fetchval(
                "select min(id) from flats where building_id = $1", building_id
            )
            await conn.execute(
                """insert into heat_allocation (building_id, flat_id, hour, measured_kwh,
                       total_kwh, common_kwh, method) values ($1, $2, $3, 1, 1, 0, 'test')""",
                building_id,
                flat_id,
                first[0],
            )
            await conn.execute(
                """insert into allocation_watermarks (building_id, complete_until)
                   values ($1, $2)""",
                building_id,
                now + timedelta(days=365),
            )
        announced = await close_due_periods(pool, LATENESS)
        async with pool.acquire() as conn:
            closed = await conn.fetch(
                """select period_start, period_end from billing_period_closures
                   where building_id = $1 order by period_start""",
                building_id,
            )
            with pytest.raises(PeriodError, match="has not ended"):
                await bill_building(conn, building_id, *current)
    finally:
        await nc.close()
        await pool.close()
    ended = [m for m in (_local_month(now, k) for k in (3, 2, 1)) if m[1] <= now - LATENESS]
    assert [(r["period_start"], r["period_end"]) for r in closed] == ended
    assert [(e.period_start, e.period_end) for e in announced if e.building_id == building_id] == (
        ended
    )
    assert len(ended) >= 2  # three months back and two months back have surely ended
    assert all(end <= current[0] for _, end in ended)
