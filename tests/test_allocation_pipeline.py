"""allocation against a real database: each layout on constructed readings, and late data."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import numpy as np
import pytest
from prometheus_client import REGISTRY

from balans_allocation import kernels, recent
from balans_allocation.__main__ import serve
from balans_allocation.allocator import (
    OUTBOX,
    complete_until,
    earliest_anchors,
    on_readings_stored,
    on_readings_stored_many,
    warm_up,
)
from balans_allocation.building import load_building
from balans_allocation.explain import explain
from balans_allocation.flags import Flag
from balans_allocation.handlers import compute_batch
from balans_allocation.readings import RegisterWindow, load_register_windows
from balans_allocation.settings import AllocationSettings
from balans_core.costs import BuildingCosts
from balans_core.outbox import OutboxRelay
from balans_core.service import ServiceContext
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, reference_building, regular_building, write_building
from balans_devstack.eventually import eventually
from balans_physics.water import k_factor_kwh_m3k
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored
from balans_protocol.streams import ensure_streams

H0 = datetime(2026, 11, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
BOUNDARIES = 8  # registers at H0 .. H0+7h: hours H0 .. H0+6h
LATENESS = timedelta(hours=3)
LOOKAROUND = 12
SITE = SiteSpec(code="t-alloc", name="t", address="t", latitude=47.0, longitude=28.8)
FLAT_PULSES = {"heat_meter": 1, "flow_meter": 10}  # per hour
RISER_PULSES = 100
BUILDING_KWH = 30
TEMPS = {"flat": (7000, 5000), "riser": (7000, 5000), "building": (7000, 5000)}
RADIATOR_TEMPS = (7000, 6500)
_building_numbers = itertools.count(100)


async def _building(conn: asyncpg.Connection, layout: str) -> int:
    index = next(_building_numbers)
    spec = regular_building(
        code=f"t-{layout}-{index}", name="t", address="t", site=SITE, layout=layout, floors=2,
        flats_per_floor=(2,), risers_per_entrance=(2,), index=index, multi_utility_every=3,
    )  # fmt: skip
    building_id = await write_building(conn, spec, KeyVault())
    assert building_id is not None
    return building_id


async def _channels(conn: asyncpg.Connection, building_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select m.id, m.utility, m.kind, m.role, m.flat_id, c.module_serial, c.input
           from meters m join channels c on c.meter_id = m.id where m.building_id = $1
           order by m.id""",
        building_id,
    )


def _pulses_per_hour(meter: asyncpg.Record, flat_rank: dict[int, int], building_kwh: int) -> int:
    if meter["utility"] != "heat":
        return 1
    if meter["role"] == "building":
        return building_kwh
    if meter["role"] == "riser":
        return RISER_PULSES
    return FLAT_PULSES[meter["kind"]] * (
        flat_rank[meter["flat_id"]] + 1 if meter["kind"] == "heat_meter" else 1
    )


async def _seed_readings(
    conn: asyncpg.Connection,
    building_id: int,
    skip: set[tuple[int, int]] = frozenset(),
    building_kwh: int = BUILDING_KWH,
    start: datetime = H0,
    boundaries: range = range(BOUNDARIES),
) -> None:
    """Registers for every channel at every boundary ``start + j h`` (except ``skip``:
    (meter, boundary)), and temperatures for every sensor pair."""
    flats = await conn.fetch("select id from flats where building_id = $1 order by id", building_id)
    rank = {f["id"]: i for i, f in enumerate(flats)}
    rows = []
    for m in await _channels(conn, building_id):
        per_hour = _pulses_per_hour(m, rank, building_kwh)
        for j in boundaries:
            if (m["id"], j) not in skip:
                rows.append((m["module_serial"], m["input"], start + j * HOUR, 1000 + per_hour * j))
    await conn.copy_records_to_table(
        "pulse_readings", records=rows, columns=["module_serial", "input", "ts", "count"]
    )
    pairs = await conn.fetch(
        "select module_serial, position, radiator_id from sensor_pairs where building_id = $1",
        building_id,
    )
    temps = []
    for p in pairs:
        tf, tr = RADIATOR_TEMPS if p["radiator_id"] else TEMPS[p["position"]]
        temps += [(p["module_serial"], start + j * HOUR, tf, tr) for j in boundaries if j]
    await conn.copy_records_to_table(
        "temperature_readings",
        records=temps,
        columns=["module_serial", "ts", "supply_centi_c", "return_centi_c"],
    )


async def _allocation(conn: asyncpg.Connection, building_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select a.*, f.area_m2 from heat_allocation a join flats f on f.id = a.flat_id
           where a.building_id = $1 order by a.hour, a.flat_id""",
        building_id,
    )


def _recomputed_rows() -> float:
    labels = {"kind": "recomputed"}
    return REGISTRY.get_sample_value("balans_allocation_flat_hours_total", labels) or 0.0


def _expected_measured(layout: str, rank: int, area: float, riser_area: float) -> float:
    k_flat = k_factor_kwh_m3k(70.0, 50.0, False, 1.6)
    if layout == "1a":
        return float(rank + 1)
    if layout == "1b":
        return 0.010 * k_flat * 20.0
    if layout == "1c":
        return BUILDING_KWH / 4
    if layout == "2a":
        return 0.1 * k_factor_kwh_m3k(70.0, 65.0, False, 1.6) * 5.0
    return 0.1 * k_flat * 20.0 * area / riser_area  # 2b: the riser's heat by area


@pytest.mark.parametrize("layout", ["1a", "1b", "1c", "2a", "2b"])
async def test_layout_hand_computed_and_sums_to_building(
    conn: asyncpg.Connection, layout: str
) -> None:
    """Every flat gets the hand-computed heat; per hour the flats sum to the building meter."""
    building_id = await _building(conn, layout)
    await _seed_readings(conn, building_id)
    announced = await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    assert [(a.hour_from, a.hour_to, a.recomputation) for a in announced] == [
        (H0, H0 + 6 * HOUR, False)
    ]
    rows = await _allocation(conn, building_id)
    assert len(rows) == 4 * 7
    riser_area = {}  # each flat of these buildings is on exactly one riser, shared by 2 flats
    flat_ids = sorted({r["flat_id"] for r in rows})
    for r in rows:
        riser_area.setdefault(flat_ids.index(r["flat_id"]) % 2, set()).add(float(r["area_m2"]))
    for r in rows:
        rank = flat_ids.index(r["flat_id"])
        expected = _expected_measured(layout, rank, float(r["area_m2"]), sum(riser_area[rank % 2]))
        assert r["measured_kwh"] == pytest.approx(expected, rel=1e-5), r
        assert not r["estimated"]
        assert r["total_kwh"] >= 0.0
    for h in range(7):
        hour_rows = [r for r in rows if r["hour"] == H0 + h * HOUR]
        assert sum(r["total_kwh"] for r in hour_rows) == pytest.approx(BUILDING_KWH, rel=1e-9)


async def test_batch_of_buildings_equals_one_at_a_time(conn: asyncpg.Connection) -> None:
    """One batch over every layout announces and stores what building-by-building would."""
    ids = [await _building(conn, layout) for layout in ["1a", "1b", "1c", "2a", "2b"]]
    for building_id in ids:
        await _seed_readings(conn, building_id)
    missing = max(ids) + 1000
    events = dict.fromkeys([*ids, missing], H0)
    announced = await on_readings_stored_many(conn, events, LATENESS, LOOKAROUND)
    assert sorted((a.building_id, a.hour_from, a.hour_to, a.recomputation) for a in announced) == [
        (b, H0, H0 + 6 * HOUR, False) for b in ids
    ]
    batch = {b: [dict(r) for r in await _allocation(conn, b)] for b in ids}
    assert all(len(rows) == 4 * 7 for rows in batch.values())
    for building_id in ids:  # the single path finds nothing to change
        assert await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND) == []
        assert [dict(r) for r in await _allocation(conn, building_id)] == batch[building_id]


async def test_a_catch_up_skips_the_newest_registers_and_stores_the_same(
    conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A building whose events reach hours past its first hour (a backlog worked off at
    once) does not have its channels' newest registers read (too few to settle it): it
    stores and announces what a twin building computed the usual way does."""
    caught_up, usual = await _building(conn, "1b"), await _building(conn, "1b")
    for building_id in (caught_up, usual):
        await _seed_readings(conn, building_id)
    read: list[list[int]] = []
    load = recent.load

    async def spy(c: asyncpg.Connection, buildings: list, *args: Any) -> dict:
        read.append([b.id for b in buildings])
        return await load(c, buildings, *args)

    monkeypatch.setattr(recent, "load", spy)
    newest = {caught_up: H0 + 6 * HOUR}
    spans = [
        [(a.hour_from, a.hour_to, a.recomputation) for a in announced]
        for announced in [
            await on_readings_stored_many(conn, {b: H0}, LATENESS, LOOKAROUND, newest=newest)
            for b in (caught_up, usual)
        ]
    ]
    assert read == [[], [usual]]
    assert spans[0] == spans[1] == [(H0, H0 + 6 * HOUR, False)]
    values = "hour, measured_kwh, estimated, common_kwh, total_kwh, flags, method, adjustment_kwh"
    stored = [
        [tuple(r[k.strip()] for k in values.split(",")) for r in await _allocation(conn, b)]
        for b in (caught_up, usual)
    ]
    assert len(stored[0]) == 4 * 7
    assert stored[0] == stored[1]


async def test_two_computations_in_one_transaction(conn: asyncpg.Connection) -> None:
    """Two buildings computed one after the other in the caller's transaction (the staging
    tables the first left until the commit are made again) store their hours and move their
    watermarks (in the buildings' upsert) to the end of the computed range."""
    ids = [await _building(conn, layout) for layout in ["1a", "2a"]]
    for building_id in ids:
        await _seed_readings(conn, building_id)
    async with conn.transaction():
        for building_id in ids:
            announced = await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
            assert [(a.hour_from, a.hour_to) for a in announced] == [(H0, H0 + 6 * HOUR)]
    marks = await conn.fetch(
        "select complete_until from allocation_watermarks where building_id = any($1::int[])",
        ids,
    )
    assert [m["complete_until"] for m in marks] == [H0 + 7 * HOUR] * 2
    assert [len(await _allocation(conn, b)) for b in ids] == [4 * 7] * 2


def _settings(database_url: str, nats_url: str, **extra: Any) -> AllocationSettings:
    """The service's settings for these tests' readings (H0 is a fixed date)."""
    return AllocationSettings(
        database_url=database_url,
        nats_url=nats_url,
        allocation_lateness_hours=3,
        allocation_lookaround_hours=LOOKAROUND,
        readings_horizon_days=(datetime.now(UTC) - H0).days + 30,
        **extra,
    )


async def test_a_batch_in_shares_stores_what_one_building_at_a_time_does(
    conn: asyncpg.Connection, database_url: str, nats_url: str
) -> None:
    """The service's batch, split into shares computed at once on their own connections,
    stores what building-by-building would (which then finds nothing to change), and notes
    what each of its buildings cost (the partitions' weights)."""
    ids = [await _building(conn, layout) for layout in ["1a", "1b", "2a", "2b", "1c"]]
    for building_id in ids:
        await _seed_readings(conn, building_id)
    settings = _settings(
        database_url, nats_url, allocation_batch_shares=2, allocation_batch_share_min_buildings=2
    )
    events = [
        ReadingsStored(building_id=b, hour_from=H0, hour_to=H0 + 7 * HOUR, rows=1) for b in ids
    ]
    transactions = REGISTRY.get_sample_value("balans_allocation_batch_buildings_count") or 0.0
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=2)
    nc = await nats.connect(nats_url)
    try:
        relay = OutboxRelay(pool, nc.jetstream(), OUTBOX, "allocation")
        costs = BuildingCosts()
        assert await compute_batch(events, pool, relay, settings, costs) == {}
    finally:
        await nc.close()
        await pool.close()
    assert REGISTRY.get_sample_value("balans_allocation_batch_buildings_count") == transactions + 2
    assert set(costs.seconds) == set(ids)
    assert all(seconds > 0 for seconds in costs.seconds.values())
    batch = {b: [dict(r) for r in await _allocation(conn, b)] for b in ids}
    assert all(len(rows) == 4 * 7 for rows in batch.values())
    for building_id in ids:  # the single path finds nothing to change
        assert await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND) == []
        assert [dict(r) for r in await _allocation(conn, building_id)] == batch[building_id]


async def test_warm_up_computes_without_storing(conn: asyncpg.Connection) -> None:
    """Warming up computes a building of each stored layout and writes nothing."""
    building_id = await _building(conn, "2b")
    await _seed_readings(conn, building_id)
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    before = [dict(r) for r in await _allocation(conn, building_id)]
    assert await warm_up(conn, LOOKAROUND) >= 1
    assert [dict(r) for r in await _allocation(conn, building_id)] == before


async def test_edges_load_only_the_nearest_registers_and_change_nothing(
    conn: asyncpg.Connection,
) -> None:
    """Loading only the nearest register in the edges gives the inner hours' consumption
    that every register gives, gaps across the edges included."""
    building_id = await _building(conn, "1a")
    meters = [m["id"] for m in await _channels(conn, building_id)]
    skip = {(meters[0], j) for j in (2, 3, 5)} | {(meters[1], j) for j in (4, 5)}
    await _seed_readings(conn, building_id, skip=skip)
    serials = {
        m["id"]: (m["module_serial"], m["input"]) for m in await _channels(conn, building_id)
    }
    for meter, boundary, shift in ((meters[0], 0, -500), (meters[1], 7, 500)):
        # an outer register out of line: taking it instead of the nearest shows
        await conn.execute(
            "update pulse_readings set count = count + $4"
            " where module_serial = $1 and input = $2 and ts = $3",
            *serials[meter],
            H0 + boundary * HOUR,
            shift,
        )
    building = await load_building(conn, building_id)
    assert building is not None
    full, sparse = await load_register_windows(
        conn,
        [
            RegisterWindow(building.meters, H0, BOUNDARIES),
            RegisterWindow(building.meters, H0, BOUNDARIES, edge=3),
        ],
    )
    assert (sparse != full).any()  # the edges really were thinned
    weight = np.array([m.pulse_weight for m in building.meters])
    capacity = np.full(len(building.meters), 1e9)
    inner = slice(3, BOUNDARIES - 1 - 3)
    got = kernels.consumption_from_registers(sparse, weight, capacity, kernels.REGISTER_MODULUS)
    exp = kernels.consumption_from_registers(full, weight, capacity, kernels.REGISTER_MODULUS)
    np.testing.assert_array_equal(got[0][:, inner], exp[0][:, inner])
    np.testing.assert_array_equal(got[1][:, inner], exp[1][:, inner])


async def test_newest_registers_settle_what_the_general_queries_find(
    conn: asyncpg.Connection,
) -> None:
    """Each channel's newest registers, read once, give the anchors, the completeness and
    the register windows the general queries give, whenever they settle them (across a gap
    longer than the rows read, a single missing hour and a register off the hour), and
    they do not settle everything: those cases take the general queries."""
    lookaround = 4
    building_id = await _building(conn, "1a")
    channels = await _channels(conn, building_id)
    meters = [m["id"] for m in channels]
    skip = {(meters[0], j) for j in range(5, 13)} | {(meters[1], 15)}
    await _seed_readings(conn, building_id, skip=skip, boundaries=range(24))
    off_hour = (channels[2]["module_serial"], channels[2]["input"], H0 + 17 * HOUR + 1200 * SECOND)
    await conn.execute(
        "insert into pulse_readings (module_serial, input, ts, count) values ($1, $2, $3, 5000)",
        *off_hour,
    )
    building = await load_building(conn, building_id)
    assert building is not None
    settled = {"anchor": 0, "window": 0}
    unsettled = dict.fromkeys(settled, 0)
    for j in range(1, 27):
        first = H0 + j * HOUR
        known = await recent.load(conn, [building], {building_id: first}, lookaround)
        anchor = known[building_id].anchor(first, first - lookaround * HOUR)
        general = await earliest_anchors(conn, [building], {building_id: first}, lookaround)
        if anchor is None:
            unsettled["anchor"] += 1
        else:
            settled["anchor"] += 1
            assert anchor == general[building_id]
        for back, hours in ((1, 1), (3, 2), (lookaround, 4)):
            start = first - back * HOUR
            assert await complete_until(
                conn, [building], {building_id: start}, LATENESS, known
            ) == await complete_until(conn, [building], {building_id: start}, LATENESS)
            window = RegisterWindow(
                building.meters, start - lookaround * HOUR, hours + 2 * lookaround + 1,
                edge=lookaround,
            )  # fmt: skip
            fast = known[building_id].window(window.start, window.boundaries, window.edge)
            if fast is None:
                unsettled["window"] += 1
                continue
            settled["window"] += 1
            (loaded,) = await load_register_windows(conn, [window])
            np.testing.assert_array_equal(fast, loaded)
    assert all(settled.values()), settled
    assert all(unsettled.values()), unsettled


async def test_late_reading_recomputes_exactly_the_affected_hours(conn: asyncpg.Connection) -> None:
    """A flat's gap is interpolated; its late registers change exactly the gap's hours."""
    building_id = await _building(conn, "1a")
    flat_meter = next(
        m for m in await _channels(conn, building_id)
        if m["kind"] == "heat_meter" and m["role"] == "flat"
    )  # fmt: skip
    await _seed_readings(conn, building_id, skip={(flat_meter["id"], 3), (flat_meter["id"], 4)})
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    before = {(r["flat_id"], r["hour"]): r for r in await _allocation(conn, building_id)}
    gap = before[(flat_meter["flat_id"], H0 + 3 * HOUR)]
    assert gap["estimated"]
    # the true registers: all the gap's 3 pulses (1 kWh each) fell in its first hour
    late = [
        (flat_meter["module_serial"], flat_meter["input"], H0 + 3 * HOUR, 1000 + 2 + 3),
        (flat_meter["module_serial"], flat_meter["input"], H0 + 4 * HOUR, 1000 + 2 + 3),
    ]
    await conn.copy_records_to_table(
        "pulse_readings", records=late, columns=["module_serial", "input", "ts", "count"]
    )
    recomputed_before = _recomputed_rows()
    announced = await on_readings_stored(conn, building_id, H0 + 3 * HOUR, LATENESS, LOOKAROUND)
    assert [(a.hour_from, a.hour_to, a.recomputation) for a in announced] == [
        (H0 + 2 * HOUR, H0 + 4 * HOUR, True)
    ]
    assert _recomputed_rows() - recomputed_before == 4 * 3
    after = {(r["flat_id"], r["hour"]): r for r in await _allocation(conn, building_id)}
    changed = {hour for (_, hour), r in after.items() if r["revision"] > 1}
    assert changed == {H0 + 2 * HOUR, H0 + 3 * HOUR, H0 + 4 * HOUR}
    fixed = [after[(flat_meter["flat_id"], H0 + h * HOUR)]["measured_kwh"] for h in (2, 3, 4)]
    assert fixed == pytest.approx([3.0, 0.0, 0.0])
    assert not after[(flat_meter["flat_id"], H0 + 2 * HOUR)]["estimated"]


async def _days_against_hours(conn: asyncpg.Connection, building_id: int) -> list[tuple]:
    """Each (flat, local day) of the building: its row of heat_allocation_days next to the
    sums of its hours (they must agree)."""
    rows = await conn.fetch(
        """select h.flat_id, (h.hour at time zone s.timezone)::date as day,
                  round(sum(h.total_kwh)::numeric, 9) as kwh, count(*) as hours,
                  bool_or(h.estimated) as estimated,
                  round(d.total_kwh::numeric, 9) as day_kwh, d.hours as day_hours,
                  d.estimated as day_estimated
           from heat_allocation h join buildings b on b.id = h.building_id
           join sites s on s.id = b.site_id
           left join heat_allocation_days d
             on d.flat_id = h.flat_id and d.day = (h.hour at time zone s.timezone)::date
           where h.building_id = $1
           group by 1, 2, d.total_kwh, d.hours, d.estimated order by 1, 2""",
        building_id,
    )
    return [tuple(r) for r in rows]


# each (meter, local day) whose row of meter_consumption_days is not the sum of its hours
# (missing, left over after its hours went, or different), and how many days there are
CONSUMPTION_DAYS_OFF = """
with h as (
  select c.meter_id, (c.hour at time zone s.timezone)::date as day, sum(c.value) as value,
         count(*) as hours, bool_or(c.estimated) as estimated
  from meter_consumption c join meters m on m.id = c.meter_id
  join buildings b on b.id = m.building_id join sites s on s.id = b.site_id
  where m.building_id = any($1::int[]) group by 1, 2),
d as (select * from meter_consumption_days where building_id = any($1::int[]))
select count(*) filter (where h.meter_id is null or d.meter_id is null or h.hours <> d.hours
                          or h.estimated <> d.estimated
                          or abs(h.value - d.value) > 1e-9 * greatest(1, abs(h.value)))
           as off,
       count(*) as days
from h full join d using (meter_id, day)
"""


async def _consumption_days_off(conn: asyncpg.Connection, building_id: int) -> int:
    row = await conn.fetchrow(CONSUMPTION_DAYS_OFF, [building_id])
    assert row["days"] > 0
    return row["off"]


async def test_days_follow_their_hours_through_a_recomputation(conn: asyncpg.Connection) -> None:
    """A flat's heat day and a meter's consumption day are the sums of their hours when
    they are written and again after late data recomputes them (the gap estimated, then
    measured), and a second run of the same hours leaves them as they are."""
    building_id = await _building(conn, "1a")
    flat_meter = next(
        m for m in await _channels(conn, building_id)
        if m["kind"] == "heat_meter" and m["role"] == "flat"
    )  # fmt: skip
    await _seed_readings(conn, building_id, skip={(flat_meter["id"], 3), (flat_meter["id"], 4)})
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    before = await _days_against_hours(conn, building_id)
    assert before
    assert all(r[2:5] == r[5:8] for r in before)
    assert any(r[0] == flat_meter["flat_id"] and r[7] for r in before)  # the gap: estimated
    assert await _consumption_days_off(conn, building_id) == 0
    gap_day = await conn.fetchrow(
        "select value, estimated from meter_consumption_days where meter_id = $1",
        flat_meter["id"],
    )
    assert gap_day["estimated"]
    late = [
        (flat_meter["module_serial"], flat_meter["input"], H0 + 3 * HOUR, 1000 + 2 + 3),
        (flat_meter["module_serial"], flat_meter["input"], H0 + 4 * HOUR, 1000 + 2 + 3),
    ]
    await conn.copy_records_to_table(
        "pulse_readings", records=late, columns=["module_serial", "input", "ts", "count"]
    )
    await on_readings_stored(conn, building_id, H0 + 3 * HOUR, LATENESS, LOOKAROUND)
    after = await _days_against_hours(conn, building_id)
    assert all(r[2:5] == r[5:8] for r in after)
    assert not any(r[0] == flat_meter["flat_id"] and r[7] for r in after)
    assert await _consumption_days_off(conn, building_id) == 0
    measured_day = await conn.fetchrow(
        "select value, estimated from meter_consumption_days where meter_id = $1",
        flat_meter["id"],
    )
    assert not measured_day["estimated"]
    assert measured_day["value"] == pytest.approx(gap_day["value"])  # same pulses, moved
    await on_readings_stored(conn, building_id, H0 + 3 * HOUR, LATENESS, LOOKAROUND)
    assert await _days_against_hours(conn, building_id) == after
    assert await _consumption_days_off(conn, building_id) == 0


# each (flat or meter, local day) whose day row differs in any bit from its hours summed in
# hour order (or whose hours or estimated differ), of these buildings; and how many there are
DAYS_NOT_THEIR_ORDERED_SUMS = """
with tz as (select b.id, s.timezone from buildings b join sites s on s.id = b.site_id
            where b.id = any($1::int[])),
heat as (select h.flat_id as key, (h.hour at time zone tz.timezone)::date as day,
                sum(h.total_kwh order by h.hour) as value, count(*) as hours,
                bool_or(h.estimated) as estimated
         from heat_allocation h join tz on tz.id = h.building_id group by 1, 2),
meter as (select c.meter_id as key, (c.hour at time zone tz.timezone)::date as day,
                 sum(c.value order by c.hour) as value, count(*) as hours,
                 bool_or(c.estimated) as estimated
          from meter_consumption c join meters m on m.id = c.meter_id
          join tz on tz.id = m.building_id group by 1, 2)
select (select count(*) from heat h full join heat_allocation_days d
          on d.flat_id = h.key and d.day = h.day
        where (d.flat_id is null or d.building_id = any($1::int[]))
          and (h.value, h.hours, h.estimated) is distinct from
              (d.total_kwh, d.hours, d.estimated))
     + (select count(*) from meter h full join meter_consumption_days d
          on d.meter_id = h.key and d.day = h.day
        where (d.meter_id is null or d.building_id = any($1::int[]))
          and (h.value, h.hours, h.estimated) is distinct from
              (d.value, d.hours, d.estimated)) as off,
       (select count(*) from heat) + (select count(*) from meter) as days
"""


def _days_written(how: str) -> float:
    return REGISTRY.get_sample_value("balans_allocation_days_written_total", {"how": how}) or 0.0


async def test_hourly_events_extend_days_to_the_bit(conn: asyncpg.Connection) -> None:
    """Hour by hour, across a local midnight, two buildings' days are extended by each new
    hour instead of rebuilt from all of their hours, and every day row is what summing its
    hours in hour order gives, to the last bit (as a rebuild makes it)."""
    start = datetime(2026, 11, 2, 18, tzinfo=UTC)  # 20:00 in Chisinau: midnight at 22:00 UTC
    buildings = [await _building(conn, "1a"), await _building(conn, "2a")]
    extended = _days_written("extended")
    for j in range(BOUNDARIES):
        for building_id in buildings:
            await _seed_readings(conn, building_id, start=start, boundaries=range(j, j + 1))
        hour = start + j * HOUR
        await on_readings_stored_many(conn, dict.fromkeys(buildings, hour), LATENESS, LOOKAROUND)
    # the first event has no hour with data yet (its registers end it) and sets the first
    # watermark; each later one brings one new hour
    assert _days_written("extended") - extended == len(buildings) * (BOUNDARIES - 1)
    row = await conn.fetchrow(DAYS_NOT_THEIR_ORDERED_SUMS, buildings)
    assert row["days"] > 2 * len(buildings)
    assert row["off"] == 0


async def test_a_catch_up_extends_days_to_the_bit(conn: asyncpg.Connection) -> None:
    """Hours stored while allocation was away, worked off at once across a local midnight,
    are added to their days in hour order instead of the days being rebuilt: every day row
    is what summing its hours in hour order gives, to the last bit."""
    start = datetime(2026, 11, 3, 18, tzinfo=UTC)  # 20:00 in Chisinau: midnight at 22:00 UTC
    buildings = [await _building(conn, "1a"), await _building(conn, "2b")]
    for j, hours in ((0, range(0, 2)), (1, range(2, 8))):  # an hour, then six at once
        for building_id in buildings:
            await _seed_readings(conn, building_id, start=start, boundaries=hours)
        hour = start + j * HOUR
        extended, rebuilt = _days_written("extended"), _days_written("rebuilt")
        await on_readings_stored_many(conn, dict.fromkeys(buildings, hour), LATENESS, LOOKAROUND)
    assert _days_written("extended") - extended == len(buildings)  # the six hours
    assert _days_written("rebuilt") == rebuilt
    row = await conn.fetchrow(DAYS_NOT_THEIR_ORDERED_SUMS, buildings)
    assert row["days"] > 2 * len(buildings)
    assert row["off"] == 0


async def test_service_consumes_readings_stored_and_announces(
    conn: asyncpg.Connection, database_url: str, nats_url: str
) -> None:
    """The running service turns a ReadingsStored event into stored heat and an announcement."""
    building_id = await _building(conn, "1b")
    await _seed_readings(conn, building_id)
    settings = _settings(
        database_url, nats_url, allocation_consumer=f"allocation-test-{building_id}"
    )
    ctx = ServiceContext(name="allocation", settings=settings)
    service = asyncio.create_task(serve(ctx))
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        announced = await nc.subscribe(subjects.allocation_computed(building_id))
        await eventually("allocation ready", lambda: ctx.ready)
        event = ReadingsStored(
            building_id=building_id, hour_from=H0, hour_to=H0 + 7 * HOUR, rows=100
        )
        await js.publish(subjects.readings_stored(building_id), event.model_dump_json().encode())
        msg = await announced.next_msg(timeout=30)
        computed = AllocationComputed.model_validate_json(msg.data)
        assert (computed.hour_from, computed.hour_to) == (H0, H0 + 6 * HOUR)
        assert not computed.recomputation
        assert len(await _allocation(conn, building_id)) == 4 * 7
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(service, 30)
        await nc.close()


async def test_explanation_trail_adds_up(conn: asyncpg.Connection) -> None:
    """The trail of a 1b flat shows its registers, ΔT, k and totals that match its rows."""
    building_id = await _building(conn, "1b")
    await _seed_readings(conn, building_id)
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    flat_id = await conn.fetchval("select min(id) from flats where building_id = $1", building_id)
    trail = await explain(conn, flat_id, H0, H0 + 7 * HOUR)
    assert trail is not None
    assert len(trail.hours) == 7
    assert trail.total_kwh == pytest.approx(
        trail.measured_kwh + trail.common_kwh + trail.adjustment_kwh
    )
    assert trail.building.building_kwh == pytest.approx(BUILDING_KWH * 7)
    flow = next(m for m in trail.meters if m.kind == "flow_meter")
    assert (flow.register_at_start, flow.register_at_end) == (1000, 1070)
    assert flow.consumption == pytest.approx(0.070)
    hour = trail.hours[0]
    assert hour.delta_t_k == pytest.approx(20.0)
    assert hour.k_kwh_per_m3k == pytest.approx(k_factor_kwh_m3k(70.0, 50.0, False, 1.6), 1e-5)
    assert hour.reasons == []
    assert trail.methodology["split"] == "area"
    assert "ΔT" in trail.method


async def test_cross_check_flags_the_disagreeing_hour(conn: asyncpg.Connection) -> None:
    """A building heat meter whose module also counts volume is checked hour by hour."""
    building_id = await _building(conn, "1a")
    heat_meter = next(
        m for m in await _channels(conn, building_id)
        if m["role"] == "building" and m["utility"] == "heat"
    )  # fmt: skip
    volume_id = await conn.fetchval(
        """insert into meters (serial, utility, kind, role, building_id, pulse_weight, unit, pipe)
           values ($1, 'heat', 'flow_meter', 'building', $2, 0.001, 'm3', 'return')
           returning id""",
        f"volume-{building_id}",
        building_id,
    )
    await conn.execute(
        "insert into channels (meter_id, module_serial, input) values ($1, $2, 5)",
        volume_id,
        heat_meter["module_serial"],
    )
    await _seed_readings(conn, building_id)
    # 30 kWh an hour at 70/50 °C is 1.307 m3; in hour 3 the volume says half as much again
    volume = [1000 + 1307 * j + (700 if j >= 4 else 0) for j in range(BOUNDARIES)]
    await conn.execute(
        "update pulse_readings set count = $3 where module_serial = $1 and input = 5 and ts = $2",
        heat_meter["module_serial"], H0, volume[0],
    )  # fmt: skip
    for j in range(1, BOUNDARIES):
        await conn.execute(
            "update pulse_readings set count = $3 where module_serial = $1 and input = 5 "
            "and ts = $2",
            heat_meter["module_serial"], H0 + j * HOUR, volume[j],
        )  # fmt: skip
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    rows = await conn.fetch(
        "select hour, flags from meter_consumption where meter_id = $1 order by hour",
        heat_meter["id"],
    )
    failed = [r["hour"] for r in rows if r["flags"] & Flag.CROSSCHECK_FAILED]
    assert failed == [H0 + 3 * HOUR]


async def test_reference_building_2a_with_a_silent_radiator_sensor(
    conn: asyncpg.Connection,
) -> None:
    """docs/domain.md's 100-flat block (2a): a dead sensor pair is estimated from its riser."""
    spec = reference_building("2a", index=next(_building_numbers))
    building_id = await write_building(conn, replace(spec, code=f"ref-2a-{spec.index}"), KeyVault())
    assert building_id is not None
    radiators = await conn.fetchval(
        "select count(*) from radiators r join flats f on f.id = r.flat_id where building_id = $1",
        building_id,
    )
    per_radiator = 0.1 * k_factor_kwh_m3k(70.0, 65.0, False, 1.6) * 5.0
    building_kwh = round(radiators * per_radiator * 1.2)  # 20% common heat
    await _seed_readings(conn, building_id, building_kwh=building_kwh)
    silent = await conn.fetchrow(
        """select module_serial, flat_id from sensor_pairs
           where building_id = $1 and radiator_id is not null order by module_serial limit 1""",
        building_id,
    )
    await conn.execute(
        "delete from temperature_readings where module_serial = $1", silent["module_serial"]
    )
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    rows = await _allocation(conn, building_id)
    assert len(rows) == 100 * 7
    for h in range(7):
        hour_rows = [r for r in rows if r["hour"] == H0 + h * HOUR]
        assert sum(r["total_kwh"] for r in hour_rows) == pytest.approx(building_kwh, rel=1e-9)
    estimated = {r["flat_id"] for r in rows if r["flags"] & Flag.TEMP_MISSING}
    assert estimated == {silent["flat_id"]}
    own = await conn.fetchval(
        "select count(*) from radiators where flat_id = $1", silent["flat_id"]
    )
    measured = next(r["measured_kwh"] for r in rows if r["flat_id"] == silent["flat_id"])
    assert measured == pytest.approx(own * per_radiator, rel=1e-5)


async def test_fixed_split_from_the_buildings_methodology_json(conn: asyncpg.Connection) -> None:
    """buildings.methodology {"split": "fixed", 60%} drives the shares: 0.6 by heat, 0.4 by area."""
    building_id = await _building(conn, "1a")
    await conn.execute(
        """update buildings set methodology = '{"split": "fixed", "consumption_share": 0.6}'
           where id = $1""",
        building_id,
    )
    await _seed_readings(conn, building_id)
    await on_readings_stored(conn, building_id, H0, LATENESS, LOOKAROUND)
    rows = [r for r in await _allocation(conn, building_id) if r["hour"] == H0 + HOUR]
    area = sum(float(r["area_m2"]) for r in rows)
    measured = sum(r["measured_kwh"] for r in rows)
    for r in rows:
        expected = BUILDING_KWH * (
            0.6 * r["measured_kwh"] / measured + 0.4 * float(r["area_m2"]) / area
        )
        assert r["total_kwh"] == pytest.approx(expected)
    assert sum(r["total_kwh"] for r in rows) == pytest.approx(BUILDING_KWH)
