"""A riser's flow drop told by its ΔT against the other risers'."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from balans_balance.analysis import _unmeasured_clog, riser_verdict
from balans_balance.detectors.clogged_riser import (
    dt_change,
    dt_rise_hour,
    moved_hours,
    without_faulty_pairs,
)
from balans_balance.detectors.leak_tapping_balance_meter import Diagnosis, GroupSeries
from balans_balance.episodes import Episode
from balans_balance.findings import Finding
from balans_balance.loading import (
    BuildingData,
    BuildingWorld,
    GroupDef,
    Reporting,
    SensorPair,
    _riser_pairs,
)

HOURS = 24 * 14
START = 24 * 10


def _risers(seed: int = 1) -> np.ndarray:
    """[riser, hour] ΔT in °C: a shared weather swing, each riser its own level, noise."""
    rng = np.random.default_rng(seed)
    weather = 1 + 0.2 * np.sin(np.arange(HOURS) / 20)
    level = rng.uniform(15, 25, 8)
    return level[:, None] * weather[None, :] * rng.normal(1, 0.01, (8, HOURS))


def test_clogged_riser_cools_more() -> None:
    """Half the flow doubles the riser's ΔT against its peers: a change of about +100 %."""
    dt = _risers()
    dt[3, START:] *= 2.0
    change = dt_change(dt, 3, START, HOURS - 1)
    assert change is not None
    assert 0.9 < change < 1.1


def test_the_dt_is_judged_where_the_flow_fell() -> None:
    """A clog of 33 hours inside an episode dated by three whole days: over the whole
    episode its ΔT's median hardly moves; over the hours the riser's flow really fell
    (what it registered against its prediction) it rises as a clog's does."""
    dt = _risers()
    clog = slice(START + 21, START + 54)
    dt[3, clog] *= 1.7
    flow = np.full(HOURS, 2.0)
    flow[clog] *= 0.57
    missed = np.zeros(HOURS)
    missed[START : START + 72] = 2.0 - flow[START : START + 72]
    moved = moved_hours(flow, missed, 0.43)
    assert moved.sum() == 33
    whole = dt_change(dt, 3, START, START + 71)
    assert whole is not None
    assert whole < 0.08
    judged = dt_change(dt, 3, START, START + 71, moved=moved)
    assert judged is not None
    assert 0.6 < judged < 0.8


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weather_alone_moves_nothing(seed: int) -> None:
    """The shared swing of the weather is no change for any riser."""
    dt = _risers(seed)
    for riser in range(dt.shape[0]):
        change = dt_change(dt, riser, START, HOURS - 1)
        assert change is not None
        assert abs(change) < 0.01


def test_too_few_readings_give_no_answer() -> None:
    """Without ΔT readings before the change there is no judgement (None)."""
    dt = _risers()
    dt[:, :START] = np.nan
    assert dt_change(dt, 2, START, HOURS - 1) is None
    assert dt_change(dt[:1], 0, START, HOURS - 1) is None


@pytest.mark.parametrize(
    ("verdict", "loss", "change", "kind"),
    [
        ("magnet", 0.5, 0.6, "clogged_riser"),  # the balance agreed, but the water slowed
        ("use_changed", 0.5, 0.001, "magnet"),  # the flow fell only on the meter
        ("use_changed", 0.5, None, "clogged_riser"),  # no ΔT: the balance's verdict
        # a small fall, ΔT in line: the meter reads low (a settled drift), not a clog
        ("use_changed", 0.1, 0.001, "drifting_meter"),
        ("use_changed", 0.15, 0.05, "use_changed"),  # ΔT barely up: no clog, no meter
        ("magnet", 0.4, 0.05, "magnet"),  # ΔT barely up: the balance's verdict stands
        ("stuck_meter", 1.0, 0.7, "stuck_meter"),  # a still register stays stuck
        ("drifting_meter", 0.1, 0.0, "drifting_meter"),
        # the flow rose, ΔT in line: the meter over-reads (unconfirmed by the balance)
        ("use_changed", -0.09, 0.01, "drifting_meter"),
        ("drifting_meter", -0.09, -0.1, "use_changed"),  # ΔT fell: the water sped up
        ("use_changed", -0.09, None, "use_changed"),  # no ΔT: a rise is no clog
    ],
)
def testriser_verdict(verdict: str, loss: float, change: float | None, kind: str) -> None:
    """The riser's ΔT overrides the balance where it speaks clearly; a clog needs its ΔT
    to rise where the riser has ΔT readings."""
    assert riser_verdict(verdict, loss, change) == kind


def test_a_meter_fault_then_a_clog_is_split_where_the_dt_rose() -> None:
    """A riser whose flow fell with its ΔT in line for three days (its meter read low)
    and whose ΔT then rose by 70 % (the riser clogged behind it): the split is the hour
    the ΔT rose; a ΔT up from the start, or never up, splits nothing."""
    dt = _risers()
    dt[3, START + 75 :] *= 1.7
    rise = dt_rise_hour(dt, 3, START, HOURS - 1, START)
    assert rise is not None
    assert START + 72 <= rise <= START + 81  # dated by 6-hour medians
    clogged = _risers()
    clogged[3, START:] *= 1.7
    assert dt_rise_hour(clogged, 3, START, HOURS - 1, START) is None
    assert dt_rise_hour(_risers(), 3, START, HOURS - 1, START) is None


def test_a_dt_of_zero_or_less_is_no_reading() -> None:
    """A riser whose pair read its water the wrong way round for the day before a clog
    (a swapped pair: a negative ΔT): those hours are no reading, and the clog's ΔT is
    judged against the day of good readings before them (+70 %)."""
    dt = _risers()
    dt[3, START - 24 : START] *= -1
    dt[3, START:] *= 1.7
    change = dt_change(dt, 3, START, HOURS - 1)
    assert change is not None
    assert 0.6 < change < 0.8


def _building(dt: np.ndarray, hours: list[datetime]) -> BuildingData:
    """A 2b building whose riser meters 100.. each share a module (10..) with their
    riser's sensor pair, the ΔT ``dt`` [riser, hour] theirs."""
    risers = range(dt.shape[0])
    no_hours = np.zeros((0, len(hours)))
    return BuildingData(
        building_id=1,
        hours=hours,
        night=np.zeros(len(hours), dtype=bool),
        groups=[],
        meter_index={100 + r: r for r in risers},
        consumption=np.ones((len(risers), len(hours))),
        supply_c=np.full(len(hours), 70.0),
        return_c=np.full(len(hours), 50.0),
        units=dict.fromkeys((100 + r for r in risers), "m3"),
        roles=dict.fromkeys((100 + r for r in risers), "riser"),
        utilities=dict.fromkeys((100 + r for r in risers), "heat"),
        flat_water=set(),
        site_id=1,
        timezone="UTC",
        reporting=Reporting(
            [], {}, {}, no_hours.astype(bool), no_hours, {100 + r: 10 + r for r in risers}, {}
        ),
        tamper={},
        meter_serials={100 + r: f"riser-{r}" for r in risers},
        pulse_weights=dict.fromkeys((100 + r for r in risers), 0.01),
        riser_dt={100 + r: dt[r] for r in risers},
        sensor_pairs=[
            SensorPair(10 + r, "riser", None, None, r, np.full(HOURS, 70.0), 70 - dt[r])
            for r in risers
        ],
        riser_pairs={100 + r: (10 + r,) for r in risers},
    )


def _drifted_return(module: int, first: datetime, last: datetime, *, active: bool) -> Finding:
    """A faulty-sensor finding: module ``module``'s return drifted from ``first`` to ``last``."""
    return Finding(
        kind="faulty_sensor",
        cause_key=f"faulty-sensor:{module}:return",
        first_hour=first,
        last_hour=last,
        active=active,
        summary=f"the return sensor of module {module} drifted",
        reason_code="faulty_sensor.drift",
        module_serial=module,
    )


def test_a_faulty_pairs_hours_set_no_reference() -> None:
    """The four days before a magnet on riser 3's meter its own pair drifted (its ΔT
    25 % low) and was found faulty: against those days its ΔT in line with the others
    reads as a rise of a third, a clog. Without the pair's faulty hours there is no
    reference, and the balance's magnet stands; the other risers keep every hour, and a
    faulty pair of another riser takes nothing from riser 3."""
    dt = _risers()
    dt[3, START - 96 : START] *= 0.75
    hours = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(HOURS)]
    drift = _drifted_return(13, hours[START - 96], hours[START - 1], active=False)
    data = _building(dt, hours)
    before = dt_change(dt, 3, START, HOURS - 1)
    assert before is not None
    assert riser_verdict("magnet", 0.5, before) == "clogged_riser"
    kept = without_faulty_pairs(data, [drift])
    masked = np.array([kept[100 + r] for r in range(dt.shape[0])])
    assert np.isnan(masked[3, START - 96 : START]).all()
    np.testing.assert_array_equal(np.delete(masked, 3, axis=0), np.delete(dt, 3, axis=0))
    assert riser_verdict("magnet", 0.5, dt_change(masked, 3, START, HOURS - 1)) == "magnet"
    other = without_faulty_pairs(data, [replace(drift, module_serial=12)])
    np.testing.assert_array_equal(other[103], dt[3])


def test_a_single_pipe_riser_loses_only_its_own_pairs_hours() -> None:
    """Single-pipe risers (2a): each riser meter on a module of its own, its ΔT its
    radiators' pairs' (modules 20.., three a riser). A radiator's pair on riser 1 found
    faulty blanks riser 1's ΔT over its hours and no other riser's: riser 3's clog is
    still judged by its ΔT."""
    dt = _risers()[:4]
    dt[3, START:] *= 1.6
    hours = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(HOURS)]
    radiators = {100 + r: tuple(20 + 3 * r + k for k in range(3)) for r in range(4)}
    data = _building(dt, hours)
    own_modules = {100 + r: 50 + r for r in range(4)}
    data = replace(
        data, reporting=replace(data.reporting, meter_module=own_modules), riser_pairs=radiators
    )
    # riser 1's second radiator
    faulty = _drifted_return(24, hours[START - 96], hours[HOURS - 1], active=True)
    kept = without_faulty_pairs(data, [faulty])
    assert np.isnan(kept[101][START - 96 :]).all()
    for r in (0, 2, 3):
        np.testing.assert_array_equal(kept[100 + r], dt[r])
    masked = np.array([kept[100 + r] for r in range(4)])
    assert riser_verdict("use_changed", 0.3, dt_change(masked, 3, START, HOURS - 1)) == (
        "clogged_riser"
    )


def test_each_riser_meter_rests_on_the_pairs_of_its_riser() -> None:
    """The window ties each riser meter to the sensor pairs on its riser (by the riser's
    id): a 2b riser's own pair, a single-pipe riser's radiators; a flat's pair and the
    building's belong to no riser, and a riser without pairs is left out."""
    meter = ("serial", "m3", "heat", "riser", None)
    world = BuildingWorld(
        building_id=1,
        site_id=1,
        timezone="UTC",
        groups=(),
        meters=(
            (1, *meter[:4], None, 7, 0.01, 50),
            (2, *meter[:4], None, 8, 0.01, 11),
            (3, *meter[:4], None, 9, 0.01, 51),
            (4, "flat", "kWh", "heat", "flat", 1, None, 0.01, 60),
        ),
        channels=(),
        modules=(),
        sensor_pairs=(
            (1, 10, "building", None, None, None),
            (1, 11, "riser", None, 8, None),
            (1, 21, "flat", 1, 7, 1),
            (1, 20, "flat", 2, 7, 2),
            (1, 30, "flat", 3, None, None),
        ),
        successor={},
    )
    meters = [world.meter(i) for i in range(len(world.meters))]
    assert _riser_pairs(world, meters) == {1: (20, 21), 2: (11,)}


def test_a_deficit_while_a_riser_is_unmeasured_and_its_dt_rose_is_its_clog() -> None:
    """The balance meter reads less than its subscribers from START while riser 2's
    module is silent (its hours are its usual level) and riser 2's ΔT rose by half: the
    riser clogged, its water slowed and the building meter saw it; no faulty balance
    meter. A riser that reported, or whose ΔT stayed in line, is no such clog."""
    hours = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(HOURS)]
    dt = _risers()[:4]
    dt[2, START:] *= 1.5
    data = _building(dt, hours)
    data.consumption[2, START:] = np.nan
    group = GroupDef(1, "building", "heat", "building", 99, (100, 101, 102, 103))
    series = GroupSeries(
        balance=np.full(HOURS, 3.6),
        subscribers=np.full(HOURS, 4.0),
        night=np.zeros(HOURS, dtype=bool),
        members=np.ones((4, HOURS)),
    )
    deficit = np.where(np.arange(HOURS) >= START, -0.4, 0.0)
    d = Diagnosis(
        Episode(START, START + 12, HOURS - 1, True),
        "faulty_balance_meter",
        {"shape": "step"},
        -1,
        deficit,
    )
    clog = _unmeasured_clog(data, group, series, [], d)
    assert clog is not None
    assert (clog.kind, clog.meter_id) == ("clogged_riser", 102)
    assert clog.first_hour == hours[START]
    assert 0.3 < clog.evidence["loss"] < 0.5
    measured = replace(data, consumption=np.ones((4, HOURS)))
    assert _unmeasured_clog(measured, group, series, [], d) is None
    steady = _building(_risers()[:4], hours)
    steady.consumption[2, START:] = np.nan
    assert _unmeasured_clog(steady, group, series, [], d) is None
