"""The kept windows (windows.py) give the alerts a full recomputation gives, on a simulated
city with faults (simulator -> allocation -> balance, real PostgreSQL).

Two small buildings, 2 weeks without faults, then 1 week with faults drawn at random
(every kind the simulator knows). The same events (hour batches, then a late
recomputation) are analysed twice, each way in its own copy of the database: through
the kept windows, as the service does, and with every window read in full (the
behaviour before them). After every event the window must equal a full read of the
same hours, and the alerts of both databases must be the same. With the detectors on a
building's turn (``BuildingStates.turn``), the events between turns read nothing and the
turn gives what a full recomputation at that hour gives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import numpy as np
import pytest
import scenario
from prometheus_client import REGISTRY

from balans_balance.__main__ import readings_spec
from balans_balance.alerts import OUTBOX
from balans_balance.analysis import analyse_building, analyse_window
from balans_balance.detectors.leak_tapping_balance_meter import ExcessSettings
from balans_balance.groups import generate_building_groups
from balans_balance.loading import BuildingData, load_building
from balans_balance.service import OpenAlerts, analyse_event, note_stored_readings
from balans_balance.settings import BalanceSettings
from balans_balance.windows import EPOCH, BuildingStates
from balans_core.consumer import JetStreamConsumer
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_devstack.pytest_plugin import with_database
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored
from balans_protocol.streams import ensure_streams
from balans_sim.city import CityConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")

START = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAYS = 10  # the analysed window (the service reads 35 days; the sameness does not depend on it)
CONFIG = CityConfig(seed=23, buildings=2, floors=(4, 4), entrances=(2, 2), flats_per_floor=(3, 3))
#: offsets from the last hour: (first, last) hour of each event, in order
BATCHES = [(-30, -30), (-29, -24), (-23, -23), (-22, -12), (-11, -6), (-5, 0)]


@dataclass(frozen=True)
class City:
    kept: str  # database analysed through kept windows
    full: str  # its copy, analysed with full reads
    last: datetime  # the last hour with data
    ids: list[int]


@pytest.fixture(scope="module")
async def city(database_url: str) -> AsyncIterator[City]:
    run = await scenario.simulate(
        database_url, CONFIG, start=START, warmup_weeks=2, fault_weeks=1, faults_per_week=3
    )
    ids = sorted(run.building_ids.values())
    conn = await asyncpg.connect(database_url)
    try:
        for building_id in ids:
            await scenario.allocate(database_url, building_id, START, run.end)
            await generate_building_groups(conn, building_id)
    finally:
        await conn.close()
    name = database_url.rsplit("/", 1)[1]
    copy = f"{name}_full"
    admin = await asyncpg.connect(with_database(database_url, "postgres"))
    try:
        await admin.execute(f"create database {copy} template {name}")
        yield City(database_url, with_database(database_url, copy), run.end - HOUR, ids)
    finally:
        await admin.execute(f"drop database if exists {copy} with (force)")
        await admin.close()


def assert_same_window(got: BuildingData, want: BuildingData) -> None:
    """Every field equal, arrays exactly (NaN where NaN)."""
    for f in fields(BuildingData):
        a, b = getattr(got, f.name), getattr(want, f.name)
        assert _same(a, b), f"window field {f.name} differs from a full read"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.shape == b.shape and bool(np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "__dataclass_fields__"):
        return type(a) is type(b) and all(
            _same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)
        )
    return bool(a == b)


async def alerts(url: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select kind, cause_key, building_id, group_id, meter_id, module_serial,
                      first_hour, last_hour, state from alerts"""
        )
    finally:
        await conn.close()
    return sorted(tuple(r) for r in rows)


async def hourly_series(url: str) -> dict[tuple[int, datetime], tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select group_id, period_start, balance_value, subscribers_value, expected_loss,
                      imbalance, band_median, band_low, band_high, night
               from imbalance_series where resolution = 'hour'"""
        )
    finally:
        await conn.close()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


async def analyse_both(
    city: City, states: BuildingStates, first: datetime, last: datetime
) -> list[str]:
    """One event for every building, analysed both ways; return how each window was
    read. The kept window must equal a full read of the same hours."""
    reads = []
    kept = await asyncpg.connect(city.kept)
    full = await asyncpg.connect(city.full)
    try:
        for building_id in city.ids:
            window = await states.window(kept, building_id, first, last, DAYS)
            reads.append(window.read)
            until = window.data.hours[-1]
            assert_same_window(window.data, await load_building(kept, building_id, until, DAYS))
            await analyse_window(kept, window.data, series_from=window.read_from)
            await analyse_building(full, building_id, until, days=DAYS)
    finally:
        await kept.close()
        await full.close()
    return reads


async def test_hour_batches_raise_the_alerts_of_full_reads(city: City) -> None:
    """Hour batches through the kept windows: after the first event none is read in full,
    and the alerts (kind, cause, group, meter, module, first and last hour, state) are
    those of the full reads, with some alerts to compare."""
    states = BuildingStates(capacity=10)
    reads = []
    for first, last in BATCHES:
        reads += await analyse_both(city, states, city.last + first * HOUR, city.last + last * HOUR)
    assert reads == ["missing"] * 2 + ["incremental"] * 2 * (len(BATCHES) - 1)
    got, want = await alerts(city.kept), await alerts(city.full)
    assert want, "the faults raised no alert: nothing was compared"
    assert got == want
    # the imbalance series: the hours the last event read are those of the full read;
    # the earlier hours are stored as the event that read them judged them (the full
    # reads rewrote them with every later fit, so their expected loss moved)
    since = city.last + BATCHES[-1][0] * HOUR
    got_rows, want_rows = await hourly_series(city.kept), await hourly_series(city.full)
    assert got_rows.keys() == want_rows.keys()
    assert {k: v for k, v in got_rows.items() if k[1] >= since} == {
        k: v for k, v in want_rows.items() if k[1] >= since
    }
    assert got_rows != want_rows, "every row the same: older hours were rewritten"


async def test_a_late_reading_reads_from_its_hour_again(city: City) -> None:
    """Allocation recomputed earlier hours (the building meter registered twice its use
    for 16 hours, read late): the event from that hour re-reads the window from there,
    and gives the full read's alerts, which the late hours changed."""
    states = BuildingStates(capacity=10)
    await analyse_both(city, states, city.last, city.last)
    before = await alerts(city.kept)
    late_from, late_to = city.last - 20 * HOUR, city.last - 5 * HOUR
    for url in (city.kept, city.full):
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                """update meter_consumption c set value = c.value * 2
                   from meters m where m.id = c.meter_id and m.building_id = $1
                    and m.role = 'building' and m.utility = 'heat'
                    and c.hour between $2 and $3""",
                city.ids[0],
                late_from,
                late_to,
            )
        finally:
            await conn.close()
    assert await analyse_both(city, states, late_from, late_to) == ["late", "late"]
    got, want = await alerts(city.kept), await alerts(city.full)
    assert got == want
    assert got != before, "the late hours changed no alert: the test proves nothing"


def analyses(when: str) -> float:
    return REGISTRY.get_sample_value("balans_balance_analyses_total", {"when": when}) or 0.0


def window_reads() -> float:
    return sum(
        s.value
        for m in REGISTRY.collect()
        if m.name == "balans_balance_window_reads"
        for s in m.samples
        if s.name.endswith("_total")
    )


async def stored_hours(url: str, building_id: int, since: datetime) -> set[datetime]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select distinct s.period_start from imbalance_series s
               join balance_groups g on g.id = s.group_id
               where g.building_id = $1 and s.resolution = 'hour' and s.period_start >= $2""",
            building_id,
            since,
        )
    finally:
        await conn.close()
    return {r[0] for r in rows}


async def test_between_turns_an_event_only_notes_its_hours(city: City, nats_url: str) -> None:
    """Hourly events through the service's own handler with the detectors on a 4-hour
    turn: an event between turns reads and stores nothing; the turn (an hour spread by
    building) reads and stores every hour since the last analysis, as a full recomputation
    at that hour gives them, and the same alerts. A restarted process (no kept window)
    analyses its first event whatever the hour."""
    every, first = 4, city.last - 11 * HOUR
    settings = BalanceSettings(balance_window_days=DAYS, balance_analysis_every_hours=every)
    cfg = ExcessSettings(
        band_days=settings.balance_band_days,
        band_k=settings.balance_band_k,
        min_run=settings.balance_min_run_hours,
    )
    for url in (city.kept, city.full):  # the earlier tests stored these hours
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("delete from imbalance_series where period_start >= $1", first)
        finally:
            await conn.close()
    pool = await asyncpg.create_pool(city.kept, min_size=1, max_size=2)
    nc = await nats.connect(nats_url)
    relay = OutboxRelay(pool, nc.jetstream(), OUTBOX, "balance")
    states = BuildingStates(10, every)
    turns: dict[int, list[datetime]] = {b: [] for b in city.ids}
    deferred, reads = analyses("deferred"), window_reads()
    try:
        for step in range(12):
            hour = first + step * HOUR
            for b in city.ids:
                event = AllocationComputed(building_id=b, hour_from=hour, hour_to=hour)
                await analyse_event(event, pool, relay, settings, states)
                turn = step == 0 or (int((hour - EPOCH) / HOUR) + b) % every == 0
                if turn:
                    turns[b].append(hour)
                    full = await asyncpg.connect(city.full)
                    try:
                        await analyse_building(full, b, hour, days=DAYS, cfg=cfg)
                    finally:
                        await full.close()
                # the full recomputations ran on the turns only: the same hours stored
                stored = await stored_hours(city.kept, b, first)
                assert stored == await stored_hours(city.full, b, first), (b, hour)
                assert max(stored) == turns[b][-1], (b, hour)
        analysed = sum(len(t) for t in turns.values())
        assert analyses("deferred") - deferred == 24 - analysed
        assert window_reads() - reads == analysed, "an event between turns read its window"
        got_rows, want_rows = await hourly_series(city.kept), await hourly_series(city.full)
        for b in city.ids:  # the last turn's hours: those of the full recomputation then
            since = turns[b][-2] + HOUR
            groups = await group_ids(city.kept, b)
            assert {k: v for k, v in got_rows.items() if k[0] in groups and k[1] >= since} == {
                k: v for k, v in want_rows.items() if k[0] in groups and k[1] >= since
            }
        assert await alerts(city.kept) == await alerts(city.full)
        # a restart: the kept windows are gone, the first event is analysed off its turn
        restarted = BuildingStates(10, every)
        b = next(b for b in city.ids if (int((city.last - EPOCH) / HOUR) + b) % every)
        analysed, before = analyses("missing"), await stored_hours(city.kept, b, first)
        event = AllocationComputed(building_id=b, hour_from=city.last, hour_to=city.last)
        await analyse_event(event, pool, relay, settings, restarted)
        assert analyses("missing") == analysed + 1
        assert await stored_hours(city.kept, b, first) > before
    finally:
        await nc.close()
        await pool.close()


async def test_the_turn_reads_what_waited_late_hours_and_gaps_included(city: City) -> None:
    """With a 4-hour turn: the hours of the events that waited, a late one among them, are
    read on the turn (from the late hour on, equal to a full read); a gap of 4 hours or
    more is analysed at once (its turn fell in the gap)."""
    every, b = 4, city.ids[0]
    states = BuildingStates(10, every)

    def phase(hour: datetime) -> int:
        return (int((hour - EPOCH) / HOUR) + b) % every

    start = next(city.last - k * HOUR for k in range(20, 30) if phase(city.last - k * HOUR) == 1)
    conn = await asyncpg.connect(city.kept)
    try:
        assert states.turn(b, start, start) == "missing"
        await states.window(conn, b, start, start, DAYS)
        late = start - 10 * HOUR
        assert states.turn(b, start + HOUR, start + HOUR) == ""
        assert states.turn(b, late, late + HOUR) == ""  # allocation recomputed earlier hours
        turn = start + 3 * HOUR
        assert phase(turn) == 0
        assert states.turn(b, turn, turn) == "turn"
        window = await states.window(conn, b, turn, turn, DAYS)
        assert (window.read, window.read_from) == ("late", late)
        assert_same_window(window.data, await load_building(conn, b, turn, DAYS))
        gap = turn + every * HOUR + HOUR  # past the next turn with no event on it
        assert phase(gap) != 0
        assert states.turn(b, gap, gap) == "overdue"
        window = await states.window(conn, b, gap, gap, DAYS)
        assert (window.read, window.read_from) == ("incremental", turn + HOUR)
    finally:
        await conn.close()


def stored_readings(outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "balans_balance_stored_readings_events_total", {"outcome": outcome}
        )
        or 0.0
    )


async def deliver_stored_readings(url: str, event: ReadingsStored, states: BuildingStates) -> None:
    """Publish ``event`` as the persister does and run balance's readings consumer until it
    has noted it."""
    nc = await connect_nats(url, "balance-test")
    js = nc.jetstream()
    await ensure_streams(js)
    before = stored_readings("late")
    await js.publish(subjects.readings_stored(event.building_id), event.model_dump_json().encode())

    async def on_readings(e: ReadingsStored) -> None:
        await note_stored_readings(e, states)

    spec = readings_spec(BalanceSettings())
    stopping = asyncio.Event()
    task = asyncio.create_task(
        JetStreamConsumer.each(js, spec, ReadingsStored, on_readings).run(stopping)
    )
    try:
        async with asyncio.timeout(20):
            while stored_readings("late") == before:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    finally:
        stopping.set()
        await task
        await nc.close()


async def test_late_status_and_temperature_rows_are_read_on_the_turn(
    city: City, module_nats_url: str
) -> None:
    """A module's status and the building pair's temperature of an hour the kept window
    already holds arrive late (no allocation figure moves, so no allocation event): the
    persister's ReadingsStored for them, published on JetStream, reaches the kept state
    through balance's readings consumer, and the building's next turn reads from that hour
    again and analyses what a fresh full read gives. A kept window the event did not reach
    (the code before, without its daily refresh) misses both rows."""
    every, b = 4, city.ids[0]
    noted, missed = BuildingStates(10, every), BuildingStates(10, every)

    def phase(hour: datetime) -> int:
        return (int((hour - EPOCH) / HOUR) + b) % every

    start = next(city.last - k * HOUR for k in range(8, 20) if phase(city.last - k * HOUR) == 1)
    turn, late = start + 3 * HOUR, start - 6 * HOUR
    stamped = late + HOUR  # a row stamped ts covers the hour ending at ts
    conn = await asyncpg.connect(city.kept)
    try:
        pair = await conn.fetchval(
            "select module_serial from sensor_pairs where building_id = $1 and position = "
            "'building'",
            b,
        )
        module = (await load_building(conn, b, start, DAYS)).reporting.modules[0]
        rows = {
            table: await conn.fetchrow(
                f"delete from {table} where module_serial = $1 and ts = $2 returning *",
                serial,
                stamped,
            )
            for table, serial in (("temperature_readings", pair), ("module_status", module))
        }
        assert all(rows.values()), "no row to arrive late: the test proves nothing"
        for states in (noted, missed):
            assert states.turn(b, start, start) == "missing"
            await states.window(conn, b, start, start, DAYS)
        for table, row in rows.items():  # the rows arrive, late
            columns = ", ".join(row.keys())
            values = ", ".join(f"${i + 1}" for i in range(len(row)))
            await conn.execute(f"insert into {table} ({columns}) values ({values})", *row.values())
        event = ReadingsStored(building_id=b, hour_from=stamped, hour_to=stamped, rows=2)
        await deliver_stored_readings(module_nats_url, event, noted)
        full = await load_building(conn, b, turn, DAYS)
        i = full.hours.index(late)
        for states in (noted, missed):
            assert states.turn(b, turn, turn) == "turn"
        window = await noted.window(conn, b, turn, turn, DAYS)
        assert (window.read, window.read_from) == ("late", late)
        assert_same_window(window.data, full)
        stale = (await missed.window(conn, b, turn, turn, DAYS)).data
        assert np.isnan(stale.supply_c[i])
        assert not np.isnan(full.supply_c[i])
        row = full.reporting.modules.index(module)
        assert np.isnan(stale.reporting.module_battery[row, i])
        assert full.reporting.module_battery[row, i] == rows["module_status"]["battery_mv"]
    finally:
        await conn.close()


async def group_ids(url: str, building_id: int) -> set[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select id from balance_groups where building_id = $1", building_id)
    finally:
        await conn.close()
    return {r[0] for r in rows}


async def test_a_group_edit_reads_the_window_in_full(city: City) -> None:
    """An operator's group edit changes the building's world: the next event reads the
    window in full (and it equals a full read); a TopologyChanged drops it."""
    states = BuildingStates(capacity=1)
    conn = await asyncpg.connect(city.kept)
    try:
        b = city.ids[0]
        assert (await states.window(conn, b, city.last, city.last, DAYS)).read == "missing"
        await conn.execute(
            """delete from balance_group_members where meter_id = (
                   select min(m.meter_id) from balance_group_members m
                   join balance_groups g on g.id = m.group_id where g.building_id = $1)""",
            b,
        )
        window = await states.window(conn, b, city.last, city.last, DAYS)
        assert window.read == "world_changed"
        assert_same_window(window.data, await load_building(conn, b, city.last, DAYS))
        # the same hour again (a redelivered event): read again from that hour
        assert (await states.window(conn, b, city.last, city.last, DAYS)).read == "late"
        # capacity 1: another building evicts the first
        await states.window(conn, city.ids[1], city.last, city.last, DAYS)
        assert b not in states
        assert (await states.window(conn, b, city.last, city.last, DAYS)).read == "missing"
    finally:
        await conn.close()


async def test_a_failed_analysis_stores_nothing(city: City) -> None:
    """An analysis's writes are one transaction: when its last write fails (the forecasts,
    refused here by a trigger), neither its coverage nor its imbalance series stays
    half-written; once the write passes, the same analysis stores both."""
    b = city.ids[0]
    conn = await asyncpg.connect(city.full)
    try:
        groups = await group_ids(city.full, b)
        await conn.execute("delete from imbalance_series where group_id = any($1::int[])", groups)
        await conn.execute(
            "update balance_groups set flats_served = null where building_id = $1", b
        )
        await conn.execute(
            """create function refuse_forecasts() returns trigger language plpgsql as
               $$ begin raise exception 'forecasts refused'; end $$;
               create trigger refuse_forecasts before insert or update on forecasts
               for each row execute function refuse_forecasts()"""
        )

        async def written() -> tuple[int, int]:
            series = await conn.fetchval(
                "select count(*) from imbalance_series where group_id = any($1::int[])", groups
            )
            coverage = await conn.fetchval(
                """select count(*) from balance_groups
                   where building_id = $1 and flats_served is not null""",
                b,
            )
            return series, coverage

        try:
            with pytest.raises(asyncpg.RaiseError, match="forecasts refused"):
                await analyse_building(conn, b, city.last, days=DAYS)
            assert await written() == (0, 0)
        finally:
            await conn.execute("drop function refuse_forecasts() cascade")
        await analyse_building(conn, b, city.last, days=DAYS)
        series, coverage = await written()
        assert series > 0
        assert coverage > 0
    finally:
        await conn.close()


async def test_coverage_is_stored_once_per_read_of_the_world(city: City, nats_url: str) -> None:
    """The groups' coverage depends on the building's world alone: the analysis after a
    full read stores it; the turns on the kept window do not compute it again (a value
    set meanwhile stays); the next full read stores it again."""
    b = city.ids[0]
    settings = BalanceSettings(balance_window_days=DAYS)  # analyses every event
    pool = await asyncpg.create_pool(city.kept, min_size=1, max_size=2)
    nc = await nats.connect(nats_url)
    relay = OutboxRelay(pool, nc.jetstream(), OUTBOX, "balance")
    states = BuildingStates(10, settings.balance_analysis_every_hours)

    async def event(hour: datetime) -> int:
        """Analyse the hour; how many of the building's groups have a coverage stored."""
        await analyse_event(
            AllocationComputed(building_id=b, hour_from=hour, hour_to=hour),
            pool,
            relay,
            settings,
            states,
        )
        covered: int = await pool.fetchval(
            "select count(*) from balance_groups where building_id = $1 and flats_served >= 0",
            b,
        )
        return covered

    async def unset() -> None:
        await pool.execute(
            "update balance_groups set flats_served = null where building_id = $1", b
        )

    try:
        groups = len(await group_ids(city.kept, b))
        await unset()
        assert await event(city.last - 2 * HOUR) == groups  # no window kept: read in full
        await unset()
        assert await event(city.last - HOUR) == 0  # the kept window's world: not again
        states.forget(b)
        assert await event(city.last) == groups
    finally:
        await nc.close()
        await pool.close()


async def test_the_open_alerts_gauge_is_counted_at_most_once_an_interval(city: City) -> None:
    """The open alerts are counted after an analysis only once per interval (the count is a
    scan of every building's open alerts); a kind whose alerts all closed goes to 0."""

    def gauge(kind: str) -> float | None:
        return REGISTRY.get_sample_value("balans_balance_alerts_open", {"kind": kind})

    now = [0.0]
    open_alerts = OpenAlerts(every_s=15, clock=lambda: now[0])
    pool = await asyncpg.create_pool(city.full, min_size=1, max_size=1)
    try:
        counts = dict(
            await pool.fetch("select kind, count(*) from alerts where state = 'open' group by kind")
        )
        assert counts, "no open alert to count"
        kind = min(counts)
        await open_alerts.refresh(pool)
        assert gauge(kind) == counts[kind]
        closed = await pool.fetch(
            """update alerts set state = 'closed', closed_at = now()
               where kind = $1 and state = 'open' returning id""",
            kind,
        )
        try:
            now[0] = 14.0
            await open_alerts.refresh(pool)
            assert gauge(kind) == counts[kind]  # within the interval: not counted again
            now[0] = 15.0
            await open_alerts.refresh(pool)
            assert gauge(kind) == 0
        finally:
            await pool.execute(
                "update alerts set state = 'open', closed_at = null where id = any($1::bigint[])",
                [r["id"] for r in closed],
            )
    finally:
        await pool.close()
