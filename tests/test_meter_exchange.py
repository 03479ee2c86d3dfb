"""Meter exchange end to end: simulated exchanges (the counter running on or reset, the
pulse weight kept or changed) recorded on time and three days late; allocation's heat
across them against the simulator's truth, no alert caused by them (issue 15, point 3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import numpy as np
import pytest

from balans_allocation.allocator import floor_hour, on_readings_stored
from balans_allocation.flags import Flag
from balans_balance.analysis import analyse_window
from balans_balance.groups import generate_building_groups
from balans_balance.loading import load_building
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, plan_equipment, regular_building
from balans_devstack.pytest_plugin import TEMPLATE, with_database
from balans_devstack.stack import DevStack
from balans_sim.climate import hour_index
from balans_sim.engine import CitySim
from balans_sim.lifecycle import (
    PlannedExchange,
    plan_tenant_changes,
    record_exchanges,
    record_tenant_changes,
)
from balans_sim.pgwriter import write_chunks
from balans_sim.world import write_city

H0 = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 31
SEED = 5
LATE = timedelta(days=3)
SITE = SiteSpec("exchange-site", "Exchange", "str. Schimb 1", 47.0, 28.8)
# 1a: 1 kWh pulses; 2a: riser flow × each radiator's ΔT (a few percent from the pairs' bias)
TOLERANCE = {"1a": 0.02, "2a": 0.06}


def _city():
    return [
        regular_building(
            code="exchange-1a", name="Exchange 1a", address="str. Schimb 1", site=SITE,
            layout="1a", floors=2, flats_per_floor=(3,), risers_per_entrance=(3,), index=71,
        ),
        regular_building(
            code="exchange-2a", name="Exchange 2a", address="str. Schimb 2", site=SITE,
            layout="2a", floors=3, flats_per_floor=(2,), risers_per_entrance=(2,), index=72,
        ),
    ]  # fmt: skip


def _planned(sim: CitySim) -> list[PlannedExchange]:
    """Mid-month swaps, one of each kind: counter runs on / is reset, same or finer pulse."""
    b1a, b2a = sim.buildings
    flat_meters = [m for m in b1a.plan.meters if m.role == "flat" and m.utility == "heat"]
    riser = next(m for m in b2a.plan.meters if m.role == "riser")
    start = hour_index(H0)
    kinds = [  # (meter, day, minute, counter_reset, new weight factor)
        (flat_meters[0], 12, 0, False, Decimal(1)),
        (flat_meters[1], 14, 37, True, Decimal(1)),
        (flat_meters[2], 16, 20, False, Decimal("0.1")),
        (riser, 15, 45, True, Decimal("0.1")),
    ]
    out = []
    for k, (m, day, minute, reset, factor) in enumerate(kinds):
        weight = Decimal(str(m.pulse_weight))
        out.append(
            PlannedExchange(
                building=b1a.spec.code if m in b1a.plan.meters else b2a.spec.code,
                module=m.module, input=m.input, hour=start + 24 * day + 9 + k, minute=minute,
                old_serial=m.serial, new_serial=f"{m.serial}-new", old_weight=weight,
                new_weight=(weight * factor).normalize(), counter_reset=reset,
                start_register=Decimal(k * 3),
            )
        )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def simulated():
    city = _city()
    sim = CitySim(city, SEED, hour_index(H0))
    planned = _planned(sim)
    for e in planned:
        next(b for b in sim.buildings if b.spec.code == e.building).exchanges.append(e)
    chunks = sim.advance(24 * DAYS)
    return city, chunks, sim.exchanged()


async def _allocate(conn: asyncpg.Connection, ids: dict[str, int], since: datetime) -> None:
    for building_id in ids.values():
        await on_readings_stored(conn, building_id, since, timedelta(hours=3), 48)


async def _prepared(
    url: str, city, chunks, exchanges, late: bool
) -> tuple[dict[str, int], dict[str, int]]:
    """Store the city and its month; exchanges recorded before the readings (on time) or
    after the readings of three days past the last swap were stored and allocated. Returns
    the building ids and, recorded late, each old meter's flags around its swap before
    the record."""
    conn = await asyncpg.connect(url)
    try:
        await write_city(conn, city, KeyVault(), SEED)
        ids = {
            s.layout: await conn.fetchval("select id from buildings where code = $1", s.code)
            for s in city
        }
        if not late:
            await record_exchanges(conn, exchanges)
            await write_chunks(conn, chunks)
            await _allocate(conn, ids, H0)
            return ids, {}
        cut = max(e.at for e in exchanges) + LATE
        hours = int((cut - H0) / timedelta(hours=1))
        await write_chunks(conn, [_head(c, hours) for c in chunks])
        await _allocate(conn, ids, H0)
        unrecorded = await _flags_around(conn, exchanges)
        await record_exchanges(conn, exchanges)
        # what the api announces with the record: the building's readings from the swap
        for e in exchanges:
            await on_readings_stored(
                conn, ids[_layout(city, e.building)], floor_hour(e.at), timedelta(hours=3), 48
            )
        await write_chunks(conn, chunks)
        await _allocate(conn, ids, H0 + timedelta(hours=hours))
        return ids, unrecorded
    finally:
        await conn.close()


async def _flags_around(conn: asyncpg.Connection, exchanges) -> dict[str, int]:
    """Each old meter's flags (OR) over the hours around its swap."""
    return {
        e.old_serial: await conn.fetchval(
            """select coalesce(bit_or(c.flags), 0) from meter_consumption c
               join meters m on m.id = c.meter_id
               where m.serial = $1 and c.hour >= $2 and c.hour < $3""",
            e.old_serial,
            e.at - timedelta(hours=3),
            e.at + timedelta(hours=3),
        )
        for e in exchanges
    }


def _layout(city, code: str) -> str:
    return next(s.layout for s in city if s.code == code)


def _head(chunk, hours: int):
    """The chunk's first ``hours`` hours (the readings sent before the late record)."""
    ok = chunk.pulse_ok.copy()
    ok[hours:] = False
    return replace(
        chunk,
        pulse_ok=ok,
        temp_ok=np.where(np.arange(len(ok))[:, None] < hours, chunk.temp_ok, False),
        status_ok=np.where(np.arange(len(ok))[:, None] < hours, chunk.status_ok, False),
        events=[],
    )


@pytest.fixture(scope="module")
def late_database_url(dev_stack: DevStack, template_database: str, database_url: str):
    """A second copy of the migrated template, for the same month recorded late."""
    name = f"{database_url.rsplit('/', 1)[-1]}_late"
    dev_stack.postgres.psql(f"create database {name} template {TEMPLATE}")
    try:
        yield with_database(database_url, name)
    finally:
        dev_stack.postgres.psql(f"drop database if exists {name} with (force)")


@pytest.fixture(scope="module")
async def stored(simulated, database_url: str, late_database_url: str):
    city, chunks, exchanges = simulated
    on_time, _ = await _prepared(database_url, city, chunks, exchanges, late=False)
    late, unrecorded = await _prepared(late_database_url, city, chunks, exchanges, late=True)
    return {
        "on_time": (database_url, on_time),
        "late": (late_database_url, late),
        "unrecorded": unrecorded,
    }


async def _per_flat(url: str, building_id: int) -> tuple[np.ndarray, slice]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select flat_id, sum(measured_kwh) as s, min(hour) as first, count(*) as n
               from heat_allocation where building_id = $1 group by flat_id order by flat_id""",
            building_id,
        )
    finally:
        await conn.close()
    ((first, n),) = {(r["first"], r["n"]) for r in rows}
    start = int((first - H0) / timedelta(hours=1))
    return np.array([r["s"] for r in rows]), slice(start, start + n)


def test_the_simulator_swapped_every_meter(simulated) -> None:
    """The ground truth carries each old meter's final register."""
    _, _, exchanges = simulated
    assert len(exchanges) == 4
    assert all(e.final_register is not None and e.final_register > 0 for e in exchanges)


@pytest.mark.parametrize("when", ["on_time", "late"])
@pytest.mark.parametrize("layout", ["1a", "2a"])
async def test_month_heat_matches_truth_across_exchanges(simulated, stored, when, layout) -> None:
    """Each flat's measured heat over the month matches the true heat, whether the
    counter ran on or was reset and whether the pulse weight changed."""
    city, chunks, _ = simulated
    url, ids = stored[when]
    measured, hours = await _per_flat(url, ids[layout])
    assert hours.stop - hours.start >= 24 * (DAYS - 1)
    chunk = chunks[[s.layout for s in city].index(layout)]
    truth = chunk.truth.flat_kwh[hours].sum(axis=0)
    np.testing.assert_allclose(measured, truth, rtol=TOLERANCE[layout])


async def test_a_reset_without_a_record_is_flagged(simulated, stored) -> None:
    """Until the exchange is recorded, a counter reset at the swap is what it always was: a
    register gone backwards (flagged, the stretch counted 0), never a negative hour."""
    _, _, exchanges = simulated
    for e in exchanges:
        if e.counter_reset:
            assert stored["unrecorded"][e.old_serial] & Flag.REGISTER_BACKWARDS, e.old_serial


async def test_late_record_gives_the_on_time_result(stored) -> None:
    """Recorded three days after the swaps, the month comes out as if recorded on time."""
    for layout in ("1a", "2a"):
        on_time, _ = await _per_flat(stored["on_time"][0], stored["on_time"][1][layout])
        late, _ = await _per_flat(stored["late"][0], stored["late"][1][layout])
        np.testing.assert_allclose(late, on_time, rtol=1e-6)


async def test_days_follow_the_hours_the_late_record_removed(simulated, stored) -> None:
    """Recorded late, the old meter's hours after its swap go, and so do its days: every
    (meter, local day) of the swapped meters is the sum of its hours, the old meter has no
    day after its swap's and the month adds up as recorded on time."""
    _, _, exchanges = simulated
    totals = {}
    for when in ("on_time", "late"):
        conn = await asyncpg.connect(stored[when][0])
        try:
            for e in exchanges:
                serials = [e.old_serial, e.new_serial]
                rows = await conn.fetch(
                    """with h as (
                         select c.meter_id, (c.hour at time zone s.timezone)::date as day,
                                sum(c.value) as value, count(*) as hours
                         from meter_consumption c join meters m on m.id = c.meter_id
                         join buildings b on b.id = m.building_id join sites s on s.id = b.site_id
                         where m.serial = any($1::text[]) group by 1, 2)
                       select m.serial, day, h.value, h.hours, d.value as day_value,
                              d.hours as day_hours
                       from h full join (select * from meter_consumption_days
                                         where meter_id in (select id from meters
                                                            where serial = any($1::text[]))) d
                         using (meter_id, day)
                       join meters m on m.id = coalesce(h.meter_id, d.meter_id)""",
                    serials,
                )
                assert rows
                for r in rows:
                    assert r["hours"] == r["day_hours"], (when, dict(r))
                    assert r["value"] == pytest.approx(r["day_value"], rel=1e-9, abs=1e-9)
                swap_day = max(r["day"] for r in rows if r["serial"] == e.old_serial)
                assert swap_day <= (e.at + timedelta(days=1)).date()
                totals[when, e.old_serial] = sum(r["day_value"] or 0 for r in rows)
        finally:
            await conn.close()
    for e in exchanges:
        assert totals["late", e.old_serial] == pytest.approx(totals["on_time", e.old_serial])


@pytest.mark.parametrize("when", ["on_time", "late"])
async def test_no_spike_no_negative_no_loss(simulated, stored, when) -> None:
    """Across every swap the old and new meter's hourly consumption add up to the true
    quantity through the input (to a pulse of each), none flagged backwards or burst."""
    city, chunks, exchanges = simulated
    url, _ = stored[when]
    conn = await asyncpg.connect(url)
    try:
        for e in exchanges:
            chunk = chunks[[s.code for s in city].index(e.building)]
            rows = await conn.fetch(
                """select c.hour, c.value, c.flags from meter_consumption c
                   join meters m on m.id = c.meter_id
                   where m.serial = any($1::text[]) and c.hour >= $2 and c.hour < $3""",
                [e.old_serial, e.new_serial],
                e.at - timedelta(days=2),
                e.at + timedelta(days=2),
            )
            assert all(r["value"] >= 0 for r in rows)
            bad = Flag.REGISTER_BACKWARDS | Flag.BURST | Flag.ROLLOVER
            assert not [r for r in rows if r["flags"] & bad]
            first = int((e.at - timedelta(days=2) - H0) / timedelta(hours=1))
            plan = next(b for b in city if b.code == e.building)
            column = _column(plan, e)
            true = chunk.true_meter[first : first + 96, column].sum()
            weights = float(e.old_weight) + float(e.new_weight)
            assert sum(r["value"] for r in rows) == pytest.approx(true, abs=2 * weights + 1e-6)
    finally:
        await conn.close()


def _column(spec, e: PlannedExchange) -> int:
    meters = plan_equipment(spec).meters
    return next(i for i, m in enumerate(meters) if (m.module, m.input) == (e.module, e.input))


async def test_no_alert_from_the_exchange(stored) -> None:
    """balance sees one continuous meter per input: no finding names an exchanged meter
    or its successor (no stuck, magnet, leak or silence)."""
    url, ids = stored["late"]
    conn = await asyncpg.connect(url)
    try:
        exchanged = {
            r["id"]
            for r in await conn.fetch(
                """select m.id from meters m join channels c on c.meter_id = m.id
                   where c.valid_from is not null or c.valid_to is not null"""
            )
        }
        assert len(exchanged) == 8
        for building_id in ids.values():
            await generate_building_groups(conn, building_id)
            data = await load_building(conn, building_id, H0 + timedelta(days=DAYS), DAYS)
            # the whole analysis the service runs (detectors, series, forecasts, alerts):
            # every per-meter step must read a replaced meter through its successor
            result = await analyse_window(conn, data)
            assert result.groups_analysed  # the groups were analysed
            findings = result.findings
            named = [f for f in findings if f.meter_id in exchanged]
            assert named == [], [f.summary for f in named]
            kinds = {f.kind for f in findings}
            assert not kinds & {"stuck_meter", "magnet", "leak", "silent_meter"}, kinds
    finally:
        await conn.close()


async def test_tenant_changes_are_recorded_once(simulated, stored) -> None:
    """The simulator's tenant change closes the flat's account on its day and opens the
    new one on the same flat that day (billing's ground truth); recording again changes
    nothing."""
    city, _, _ = simulated
    url, _ = stored["on_time"]
    spec = city[0]
    accounts = [(f.number, f"{spec.code}-{f.number}") for f in spec.flats]
    (change,) = plan_tenant_changes(
        spec.code, accounts, SEED, spec.index, hour_index(H0), 24 * DAYS, 1
    )
    conn = await asyncpg.connect(url)
    try:
        assert await record_tenant_changes(conn, [change]) == 1
        assert await record_tenant_changes(conn, [change]) == 0
        rows = await conn.fetch(
            """select a.number, a.opened_on, a.closed_on, f.number as flat from accounts a
               join flats f on f.id = a.flat_id where a.number = any($1::text[])
               order by a.opened_on nulls first""",
            [change.old_account, change.new_account],
        )
    finally:
        await conn.close()
    assert [(r["number"], r["flat"]) for r in rows] == [
        (change.old_account, change.flat),
        (change.new_account, change.flat),
    ]
    assert rows[0]["closed_on"] == rows[1]["opened_on"] == change.on
    assert rows[1]["closed_on"] is None
