"""Faults older than the data read, tamper flags on multi-channel modules, metering
coverage and the frozen band, on a simulated city (simulator -> allocation -> balance,
real PostgreSQL).

Two 1c buildings (one hot-water meter per flat, four flats per module), 2 weeks without
faults, then 3 weeks with them. Building A: a heat meter stuck and a module dead from the
first faulty hour, both long before the 14-day window analysed, and a magnet with the
tamper flag on one meter of a four-channel module 5 days before the end. Building B: a
leak over the last 3 weeks, analysed over 35 days, then with 30 of its 40 flats taken
out of its heat group."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
import scenario

from balans_balance.analysis import analyse_building
from balans_db.queries import balance
from balans_sim.api import prepare
from balans_sim.city import CityConfig

pytestmark = pytest.mark.asyncio(loop_scope="session")

START = datetime(2026, 1, 5, tzinfo=UTC)
FAULTS_FROM = START + timedelta(weeks=2)  # faults take effect when the faulty weeks begin
CONFIG = CityConfig(
    seed=41,
    buildings=2,
    layout_mix={"1c": 1.0},
    floors=(5, 5),
    entrances=(2, 2),
    flats_per_floor=(4, 4),
)
GROUP_KINDS = ("leak", "unauthorised_connection", "faulty_balance_meter")


@dataclass(frozen=True)
class City:
    database_url: str
    end: datetime
    ids: dict[str, int]  # "a", "b" -> building id
    stuck_serial: str
    magnet_serial: str
    magnet_neighbours: list[str]  # the other meters on the magnet's module
    dead_module: int


@pytest.fixture(scope="module")
async def city(database_url: str) -> City:
    sim, _ = prepare(CONFIG, START, 1)
    a, b = sim.buildings
    heat_a = [m for m in a.plan.meters if m.role == "flat" and m.utility == "heat"]
    stuck, magnet = heat_a[3], heat_a[21]
    used = {stuck.module, magnet.module, *(m.module for m in a.plan.meters if m.role != "flat")}
    dead = next(m.serial for m in a.plan.modules if m.serial not in used)

    def fault(code: str, kind: str, start: datetime, **where: object) -> dict[str, object]:
        params = {
            "magnet": {"factor": 0.4, "tamper_flag_raised": True},
            "leak": {"rate_m3_h": 0.4},
        }.get(kind, {})
        return {"kind": kind, "building": code, "start": start, "end": None, "where": where,
                "params": params}  # fmt: skip

    run = await scenario.simulate(
        database_url,
        CONFIG,
        start=START,
        warmup_weeks=2,
        fault_weeks=3,
        faults_per_week=0,
        faults=[
            fault(a.spec.code, "stuck_meter", FAULTS_FROM, meter_serial=stuck.serial,
                  module_serial=stuck.module),
            fault(a.spec.code, "dead_module", FAULTS_FROM, module_serial=dead),
            fault(a.spec.code, "magnet", START + timedelta(days=30), meter_serial=magnet.serial,
                  module_serial=magnet.module),
            fault(b.spec.code, "leak", FAULTS_FROM),
        ],
    )  # fmt: skip
    ids = {"a": run.building_ids[a.spec.code], "b": run.building_ids[b.spec.code]}
    for building_id in ids.values():
        await scenario.allocate(database_url, building_id, START, run.end)
    return City(
        database_url,
        run.end,
        ids,
        stuck.serial,
        magnet.serial,
        [m.serial for m in heat_a if m.module == magnet.module and m is not magnet],
        dead,
    )


async def _alerts(conn: asyncpg.Connection, building_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        """select a.*, m.serial from alerts a left join meters m on m.id = a.meter_id
           where a.building_id = $1 order by a.id""",
        building_id,
    )


async def test_faults_older_than_the_window_alert_once(city: City) -> None:
    """The stuck meter and the dead module began a week before the 14 days read: each
    raises exactly one alert, "since before" the window's first day; the tamper flag of a
    four-channel module names the one meter that lost its use (with what its peers say it
    should have registered, for the chart), and its loss is no group leak. A second
    analysis an hour later opens nothing new."""
    await scenario.analyse(city.database_url, city.ids["a"], city.end - timedelta(hours=2), 14)
    await scenario.analyse(city.database_url, city.ids["a"], city.end - timedelta(hours=1), 14)
    conn = await asyncpg.connect(city.database_url)
    try:
        rows = await _alerts(conn, city.ids["a"])
    finally:
        await conn.close()
    found = [(r["kind"], r["serial"] or r["module_serial"]) for r in rows]
    stuck = [r for r in rows if r["serial"] == city.stuck_serial]
    dead = [r for r in rows if r["module_serial"] == city.dead_module]
    magnet = [r for r in rows if r["serial"] == city.magnet_serial]
    assert [r["kind"] for r in stuck] == ["stuck_meter"], found
    assert [r["kind"] for r in dead] == ["dead_module"], found
    assert [r["kind"] for r in magnet] == ["magnet"], found
    window_start = city.end - timedelta(hours=2) - timedelta(hours=14 * 24 - 1)
    for r in (*stuck, *dead):
        assert r["state"] == "open"
        assert r["began_before"]
        assert r["first_hour"] == window_start
        assert r["detected_hour"] is not None
        assert "since before" in r["summary"]
    assert stuck[0]["reason_code"] == "stuck_meter.not_counted_since_before"
    assert json.loads(stuck[0]["reason_params"])["meter_serial"] == city.stuck_serial
    assert dead[0]["reason_code"] == "dead_module.silent_since_before"
    assert magnet[0]["reason_code"] == "magnet.tamper_flag"
    assert city.magnet_serial in magnet[0]["summary"]
    assert magnet[0]["first_hour"] >= START + timedelta(days=30) - timedelta(hours=1)
    # the evidence chart: what the peers say the magnet's meter should have registered
    predicted = json.loads(magnet[0]["evidence"])["peers_predicted"]
    assert len([v for v in predicted if v is not None]) >= 4 * 24
    assert not [r for r in rows if r["serial"] in city.magnet_neighbours], found
    assert not [r for r in rows if r["kind"] in GROUP_KINDS], found


async def test_leak_span_stored_and_band_frozen(city: City) -> None:
    """A leak over the last three weeks of 35 days: its alert's span is published for
    the chart, and the band learned before it stays put: the imbalance is above the band
    through the leak's last week, it is not learned as normal. The overview's flats
    against the building meter are the heat group's figures; losses come in absolute
    terms against the target."""
    building_id = city.ids["b"]
    until = city.end - timedelta(hours=1)
    await scenario.analyse(city.database_url, building_id, until, 35)
    conn = await asyncpg.connect(city.database_url)
    try:
        group_id = await conn.fetchval(
            """select id from balance_groups
               where building_id = $1 and kind = 'building' and utility = 'heat'""",
            building_id,
        )
        spans = await balance.alert_spans(conn, group_id, START, city.end)
        rows = await balance.imbalance_series(
            conn, group_id, "hour", until - timedelta(days=7), city.end
        )
        days = await balance.imbalance_series(conn, group_id, "day", START, city.end)
        losses = await balance.group_losses(conn, group_id, START, city.end)
        overview = await balance.building_heat_days(conn, building_id, START, "UTC")
    finally:
        await conn.close()
    # one definition: the overview's days are the heat group's, the first one partial
    assert [d["t"] for d in overview] == [d["t"] for d in days]
    assert [d["members_value"] for d in overview] == pytest.approx(
        [d["members_value"] for d in days]
    )
    assert [d["partial"] for d in overview] == [True] + [False] * (len(days) - 1)
    # losses in absolute terms, against the target
    assert losses["loss"] == pytest.approx(losses["balance_value"] - losses["members_value"])
    assert losses["loss_share"] == pytest.approx(losses["loss"] / losses["balance_value"])
    assert losses["loss_share_of_building"] == pytest.approx(losses["loss_share"])
    assert losses["loss_target_share"] == pytest.approx(0.1)
    (leak,) = [s for s in spans if s["kind"] == "leak"]
    assert leak["state"] == "open"
    assert (
        FAULTS_FROM - timedelta(hours=1) <= leak["first_hour"] <= FAULTS_FROM + timedelta(hours=12)
    )
    above = np.array([r["imbalance"] > r["band_high"] for r in rows if r["band_high"]])
    assert above.size >= 150
    assert above.mean() >= 0.9, above.mean()
    # the first UTC day read starts an hour late: partial (23 of 24 hours), not a dip
    assert days[0]["coverage"] == pytest.approx(23 / 24)
    assert all(d["coverage"] == 1 for d in days[1:])


async def test_ten_of_forty_flats_metered_raise_no_imbalance_alert(city: City) -> None:
    """The leaking building's heat group with only 10 of its 40 flats left in it is
    incomplete ("10 of 40 flats metered"): it raises no imbalance alert (the leak alert
    closes: balance no longer reports it), its series is still stored."""
    building_id = city.ids["b"]
    conn = await asyncpg.connect(city.database_url)
    try:
        group_id = await conn.fetchval(
            """select id from balance_groups
               where building_id = $1 and kind = 'building' and utility = 'heat'""",
            building_id,
        )
        await conn.execute(
            """delete from balance_group_members where group_id = $1 and meter_id not in
               (select meter_id from balance_group_members where group_id = $1
                order by meter_id limit 10)""",
            group_id,
        )
        await analyse_building(conn, building_id, city.end - timedelta(hours=1), days=35)
        group = await conn.fetchrow(f"{balance.GROUPS_WITH_MEMBERS} where g.id = $1", group_id)
        open_alerts = await conn.fetch(
            "select kind from alerts where group_id = $1 and state = 'open'", group_id
        )
        stored = await conn.fetchval(
            "select count(*) from imbalance_series where group_id = $1 and resolution = 'hour'",
            group_id,
        )
    finally:
        await conn.close()
    assert (group["flats_metered"], group["flats_served"]) == (10, 40)
    assert group["coverage_complete"] is False
    assert [r["kind"] for r in open_alerts if r["kind"] in GROUP_KINDS] == []
    assert stored >= 35 * 24 - 1
