"""Group diagnosis by separate changes: each group fault fires alone, concurrent ones
come apart, and noise, weekends, away flats and cold snaps stay silent."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from balans_balance.analysis import _without_faulty_sensors
from balans_balance.detectors.changes import Change
from balans_balance.detectors.leak_tapping_balance_meter import (
    Diagnosis,
    ExcessSettings,
    GroupSeries,
    _also_possible,
    _change_kind,
    _drift_rose_from,
    change_series,
    diagnose_group,
    level_days,
    return_shift,
    with_slots,
)
from balans_balance.episodes import Episode

START = 600  # faults begin after 25 days of normal history


def _flat_change(
    shape: str, start: int, end: int, coef: float, alternatives: dict[str, float] | None = None
) -> Change:
    """A change adding ``coef`` of a constant use of 100 over hours [start, end) of a
    35-day window."""
    hours = np.arange(35 * 24)
    contribution = np.where((hours >= start) & (hours < end), coef * 100.0, 0.0)
    return Change(shape, start, end, coef, 1e4, contribution, alternatives or {})


def _kinds(diagnoses: list) -> list[str]:
    return sorted(d.kind for d in diagnoses)


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("cold_snap", [False, True])
def test_silent_on_noise_weekends_and_cold_snaps(world, seed: int, cold_snap: bool) -> None:
    """35 days of noisy use with weekends, two flats away (and a cold snap): nothing."""
    assert diagnose_group(world(seed=seed, cold_snap=cold_snap).series()) == []


@pytest.mark.parametrize("seed", [4, 5])
def test_each_group_fault_fires_alone(world, seed: int) -> None:
    """A constant 4 kWh/h, 8 % of the flats' heat, a drift to +10 %: one finding each."""
    w = world(seed=seed)
    hours = np.arange(w.true.shape[1])
    flats = w.true.sum(axis=0)
    leak = np.where((hours >= START) & (hours < START + 120), 4.0, 0.0)
    tap = np.where(hours >= START, 0.08 * flats, 0.0)
    drift = 0.10 * flats * np.clip((hours - START) / 240, 0, 1)
    cases = ((leak, "leak"), (tap, "unauthorised_connection"), (drift, "faulty_balance_meter"))
    for extra, kind in cases:
        found = diagnose_group(w.series(extra))
        assert _kinds(found) == [kind]
        assert abs(found[0].episode.start - START) <= 24


def test_concurrent_leak_and_tapping_in_are_two_findings(world) -> None:
    """A leak from day 25 to 30 during a tapping-in from day 27 on: two findings, the
    leak closed after it ends, the tapping-in still open."""
    w = world(seed=6)
    hours = np.arange(w.true.shape[1])
    leak = np.where((hours >= START) & (hours < START + 120), 4.0, 0.0)
    tap = np.where(hours >= START + 48, 0.10 * w.true.sum(axis=0), 0.0)
    found = {d.kind: d for d in diagnose_group(w.series(leak + tap))}
    assert set(found) == {"leak", "unauthorised_connection"}
    assert not found["leak"].episode.active
    assert abs(found["leak"].episode.end - (START + 119)) <= 12
    assert found["unauthorised_connection"].episode.active
    assert abs(found["unauthorised_connection"].episode.start - (START + 48)) <= 12


def test_a_second_leak_while_the_first_goes_on_is_a_cause_of_its_own(world) -> None:
    """A leak from day 25 on and a second, larger one from day 28 to 31: two leaks, in
    two slots (two alerts: one alert per kind would date the second from the first's
    start); a later leak after a quiet gap takes the first free slot again."""
    w = world(seed=6)
    hours = np.arange(w.true.shape[1])
    first = np.where((hours >= START) & (hours < START + 120), 4.0, 0.0)
    second = np.where((hours >= START + 72) & (hours < START + 144), 8.0, 0.0)
    leaks = sorted(
        (d for d in diagnose_group(w.series(first + second)) if d.kind == "leak"),
        key=lambda d: d.episode.start,
    )
    assert len(leaks) >= 2
    assert abs(leaks[0].episode.start - START) <= 12
    assert leaks[0].slot == 0
    assert any(d.slot == 1 and abs(d.episode.start - (START + 72)) <= 12 for d in leaks[1:])
    ep = leaks[0].episode
    later = replace(leaks[0], episode=replace(ep, start=ep.end + 24, end=ep.end + 48))
    assert [d.slot for d in with_slots([leaks[0], later], 12)] == [0, 0]


def test_pieces_of_one_fault_beginning_together_share_its_slot() -> None:
    """The fit splits a fault none of its shapes fits exactly into pieces that begin
    together (a drift as a ramp and a scale): a piece beginning within a day of a
    running change of its kind takes that change's slot (one alert), while one beginning
    three days later is a second fault with a slot of its own."""
    cfg = ExcessSettings()
    ramp = Diagnosis(Episode(600, 640, 800, False), "faulty_balance_meter", {})
    scale = Diagnosis(Episode(606, 650, 760, False), "faulty_balance_meter", {})
    later = Diagnosis(Episode(672, 700, 790, False), "faulty_balance_meter", {})
    leak = Diagnosis(Episode(603, 615, 700, False), "leak", {})
    slots = with_slots([ramp, scale, later, leak], cfg.quiet_to_close, cfg.together_hours)
    by_start = {(d.kind, d.episode.start): d.slot for d in slots}
    assert by_start[("faulty_balance_meter", 600)] == 0
    assert by_start[("faulty_balance_meter", 606)] == 0
    assert by_start[("faulty_balance_meter", 672)] == 1
    assert by_start[("leak", 603)] == 0
    # without the day's grace each piece was a fault of its own
    apart = with_slots([ramp, scale], cfg.quiet_to_close)
    assert sorted(d.slot for d in apart) == [0, 1]


def test_negative_change_trimming_a_larger_one_is_no_meter_fault() -> None:
    """A negative share-of-use change inside a larger positive one (two overlapping
    tappings-in, one ended) is no fault; alone, the same change is an under-reading
    balance meter."""
    n = 35 * 24
    use = np.full(n, 100.0)
    reading = 1.1 * use

    def change(start: int, coef: float) -> Change:
        contribution = np.where(np.arange(n) >= start, coef * use, 0.0)
        return Change("use", start, n, coef, 1e4, contribution)

    larger, trim = change(START, 0.14), change(START + 96, -0.08)
    assert _change_kind(larger, [trim], reading, ExcessSettings()) == "unauthorised_connection"
    assert _change_kind(trim, [larger], reading, ExcessSettings()) is None
    assert _change_kind(trim, [], reading, ExcessSettings()) == "faulty_balance_meter"


def test_a_constant_deficit_is_an_under_reading_balance_meter_unless_a_riser_clogged() -> None:
    """The balance meter reading a constant 5 % below its subscribers: no group fault
    takes water away from them, so the meter under-reads; the same deficit beginning
    with a clogged riser is the clog's cooler water in a volume balance."""
    n = 35 * 24
    reading = np.full(n, 110.0)
    step = np.where(np.arange(n) >= START, -5.5, 0.0)
    deficit = Change("step", START, n, -5.5, 1e4, step)
    cfg = ExcessSettings()
    assert _change_kind(deficit, [], reading, cfg) == "faulty_balance_meter"
    assert _change_kind(deficit, [], reading, cfg, clogs=(START - 10,)) is None
    assert _change_kind(deficit, [], reading, cfg, clogs=(START - 240,)) == "faulty_balance_meter"
    small = Change("step", START, n, -1.1, 1e4, step / 5)
    assert _change_kind(small, [], reading, cfg) is None


def test_an_under_reading_ending_with_a_larger_excess_is_its_correction() -> None:
    """A negative scale of the reading on a larger excess's window, ending with it, is
    the fit correcting that excess's shape: no faulty balance meter. One inside it that
    ends days before it does (a meter drifting during a leak) stays a finding."""
    n = 35 * 24
    use = np.full(n, 100.0)
    reading = 1.1 * use

    excess = _flat_change("use", START, START + 120, 0.12)
    correction = _flat_change("scale", START, START + 120, -0.04)
    drift = _flat_change("ramp", START + 24, START + 72, -0.04)
    assert _change_kind(correction, [excess], reading, ExcessSettings()) is None
    assert _change_kind(drift, [excess], reading, ExcessSettings()) == "faulty_balance_meter"


def test_a_drift_beginning_with_a_leak_and_a_correction_began_where_it_ends() -> None:
    """A leak from START and the balance meter over-registering by 10 % from three days
    later, fitted as a scale from START with a negative step until the drift came: the
    register's error began where the correction ends (a register does not begin to
    drift the very hour water starts to be lost). Without the leak beginning with it,
    or with a correction ending with the drift, the drift keeps its own start."""
    n = 35 * 24
    cfg = ExcessSettings()
    drift = _flat_change("scale", START, n, 0.10)
    leak = _flat_change("step", START + 3, START + 96, 0.03)
    correction = _flat_change("step", START + 6, START + 72, -0.06)
    assert _drift_rose_from(drift, [leak, correction], cfg) == START + 72
    assert _drift_rose_from(drift, [correction], cfg) is None
    with_it = _flat_change("step", START + 6, n - 6, -0.06)
    assert _drift_rose_from(drift, [leak, with_it], cfg) is None
    # a correction larger than the drift over its hours is no rise of the drift
    larger = _flat_change("step", START + 6, START + 72, -0.12)
    assert _drift_rose_from(drift, [leak, larger], cfg) is None


def test_a_widening_leak_split_into_a_step_and_a_growth_is_judged_whole() -> None:
    """A crack widening over four days, fitted as a constant of 0.8 % of the reading and
    a rising ramp to 1.2 % over the same hours that a loss growing from nothing fits as
    well: each piece is below the smallest leak reported, the water lost is their sum
    (1.4 %), a leak. A ramp a growing loss does not fit (a register's drift), or one on
    other hours, adds nothing to it."""
    n = 35 * 24
    reading = np.full(n, 100.0)
    cfg = ExcessSettings()
    step = _flat_change("step", START, START + 96, 0.008)
    hours = np.arange(n)
    rising = np.where((hours >= START) & (hours < START + 96), (hours - START + 1) / 96, 0.0)
    growth = Change("ramp", START + 3, START + 96, 0.012, 1e4, 1.2 * rising, {"grow": -3.0})
    assert _change_kind(step, [], reading, cfg) is None
    assert _change_kind(step, [growth], reading, cfg) == "leak"
    drift = replace(growth, alternatives={"grow": 900.0})
    assert _change_kind(step, [drift], reading, cfg) is None
    later = replace(growth, start=START + 48, end=START + 200)
    assert _change_kind(step, [later], reading, cfg) is None


def test_leak_in_a_volume_balance_is_a_leak() -> None:
    """Constant-flow risers metered in m³, the building in kWh, ΔT following the
    weather: a 0.5 m³/h leak that also lifts the building's ΔT (and so the members' heat
    computed with it) by 10 % is a leak (in kWh its excess follows the members' heat
    and reads as a tapping-in), found from its start and closed after it ends."""
    rng = np.random.default_rng(8)
    n = 35 * 24
    hours = np.arange(n)
    outdoor = -2 + 4 * np.sin(2 * np.pi * hours / 480) + 2 * np.sin(2 * np.pi * hours / 24)
    leaking = (hours >= START) & (hours < START + 96)
    per_m3 = 1.16 * (14 + 1.5 * (5 - outdoor)) * np.where(leaking, 1.10, 1.0)
    risers = rng.normal(1.5, 0.03, (6, n))  # m³/h, nearly constant
    volume = risers.sum(axis=0) + 0.3 + 0.5 * leaking + rng.normal(0, 0.02, n)
    s = GroupSeries(
        balance=np.round(volume * per_m3, 1),
        subscribers=risers.sum(axis=0) * per_m3,
        night=(hours % 24 >= 22) | (hours % 24 < 5),
        members=risers,
        heat_per_m3=per_m3,
    )
    (d,) = diagnose_group(s)
    assert d.kind == "leak"
    assert abs(d.episode.start - START) <= 6
    assert not d.episode.active


@pytest.mark.parametrize("days", [4, 8])
def test_new_building_first_readings_are_no_change(world, days: int) -> None:
    """A building whose readings began a few days ago (the window before is empty) gets
    no group fault from its first readings, and a leak after enough history still fires."""
    w = world(seed=4)
    s = w.series()
    blank = s.balance.size - days * 24
    s.balance[:blank] = np.nan
    s.subscribers[:blank] = np.nan
    assert diagnose_group(s) == []
    extra = np.zeros(s.balance.size)
    extra[-60:] = 8.0  # large enough that a constant is not mistaken for a share of use
    leaked = w.series(extra)
    leaked.balance[:blank] = np.nan
    leaked.subscribers[:blank] = np.nan
    kinds = _kinds(diagnose_group(leaked))
    assert kinds == (["leak"] if days == 8 else [])


def _heat_per_m3(hours: int) -> np.ndarray:
    """kWh per m³ of the building's sensor pair: its ΔT follows the weather (the world's
    outdoor temperature; a quality-regulated network)."""
    t = np.arange(hours)
    outdoor = (
        -2 + 4 * np.sin(2 * np.pi * (t // 24) / 20) + 2 * np.sin(2 * np.pi * (t % 24 - 9) / 24)
    )
    return 1.16 * (14 + 1.5 * (5 - outdoor))


def test_leak_at_the_building_dt_in_a_heat_meter_balance_is_a_leak(world) -> None:
    """Flats metered in kWh: 0.15 m³/h lost at the supply temperature carries heat at
    the building's ΔT, so its kWh follow the weather like the flats' use; fitted in
    coolant volume (the building's sensor pair) it is the constant it physically is."""
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    per_m3 = _heat_per_m3(hours.size)
    leaking = (hours >= START) & (hours < START + 120)
    s = replace(w.series(np.where(leaking, 0.15 * per_m3, 0.0)), heat_per_m3=per_m3)
    (d,) = diagnose_group(s)
    assert d.kind == "leak"
    assert abs(d.episode.start - START) <= 12
    assert not d.episode.active


@pytest.mark.parametrize("settle_hours", [48, 96])
def test_balance_meter_drift_that_settles_is_one_finding(world, settle_hours: int) -> None:
    """The balance meter's error ramps to +8 % and stays there to the end: one faulty
    balance meter from the ramp's start, still open, and no leak or tapping-in for its
    plateau."""
    w = world(seed=5)
    hours = np.arange(w.true.shape[1])
    clean = w.true.sum(axis=0) + w.losses
    error = 0.08 * np.clip((hours + 1 - START) / settle_hours, 0, 1)
    s = replace(w.series(error * clean), heat_per_m3=_heat_per_m3(hours.size))
    (d,) = diagnose_group(s)
    assert d.kind == "faulty_balance_meter"
    assert abs(d.episode.start - START) <= 24
    assert d.episode.active


def test_constant_over_registering_says_it_may_be_a_draw(world) -> None:
    """The balance meter registering 6 % more from one hour on is, for the meters, the
    same as a consumer drawing 6 % of the flow and returning none: the finding is a
    faulty balance meter that names the unauthorised draw as also possible."""
    w = world(seed=6)
    hours = np.arange(w.true.shape[1])
    clean = w.true.sum(axis=0) + w.losses
    s = replace(
        w.series(np.where(hours >= START, 0.06 * clean, 0.0)),
        heat_per_m3=_heat_per_m3(hours.size),
    )
    (d,) = diagnose_group(s)
    assert d.kind == "faulty_balance_meter"
    assert "unauthorised_connection" in d.evidence["also_possible"]
    assert abs(d.episode.start - START) <= 12


def _return_scenario(
    world, moved: float, fault_hours: int | None = None
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Seed 4's world, the fault's hours (from START, ``fault_hours`` long or to the
    end), the members' ΔT (a slow wave) and the building's: 0.9 of theirs + 1 K, its
    return ``moved`` K off their mix while the fault lasts."""
    rng = np.random.default_rng(3)
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    members_dt = 15 + 2 * np.sin(2 * np.pi * hours / 240) + rng.normal(0, 0.03, hours.size)
    during = (hours >= START) & (hours < START + (fault_hours or hours.size))
    balance_dt = 0.9 * members_dt + 1.0 + rng.normal(0, 0.03, hours.size) + moved * during
    return w, during, members_dt, balance_dt


@pytest.mark.parametrize("moved", [0.0, 0.8])
def test_return_temperature_tells_a_tapping_in_from_water_that_never_returns(
    world, moved: float
) -> None:
    """The same extra coolant from one hour on: with the building's return as its
    risers' mix (the water never came back: lost or drawn off) it is a leak that may as
    well be an unauthorised draw; with the return 0.8 °C off the mix (a consumer
    returning its water at another ΔT) it is a tapping-in."""
    w, during, members_dt, balance_dt = _return_scenario(world, moved, 120)
    per_m3 = _heat_per_m3(during.size)
    s = replace(
        w.series(np.where(during, 0.15 * per_m3, 0.0)),
        heat_per_m3=per_m3,
        balance_dt=balance_dt,
        members_dt=members_dt,
    )
    (d,) = diagnose_group(s)
    assert abs(d.evidence["return_dt_shift_k"] - moved) < 0.1
    if moved:
        assert d.kind == "unauthorised_connection"
        assert "also_possible" not in d.evidence
    else:
        assert d.kind == "leak"
        # the unmoved return names the draw first; a constant flow's scaled register fits
        # the same change as well, and the unmoved return does not rule it out
        assert d.evidence["also_possible"][0] == "unauthorised_connection"
        assert set(d.evidence["also_possible"]) <= {
            "unauthorised_connection",
            "faulty_balance_meter",
        }


def test_a_return_moved_by_a_tapping_in_already_running_is_not_the_next_changes(world) -> None:
    """A tapping-in returning its water 0.8 °C off the mix from one hour on, and a leak
    beginning 27 h later: measured against the week before, the leak seems to move the
    return; measured only after the tapping-in began, there are too few hours to say."""
    w, _, members_dt, balance_dt = _return_scenario(world, 0.8)
    s = replace(w.series(), balance_dt=balance_dt, members_dt=members_dt)
    cfg = ExcessSettings()
    shift = return_shift(s, START + 27, START + 96, cfg)
    assert shift is not None
    assert shift[0] > cfg.return_shift_k  # read as the leak's own shift
    assert return_shift(s, START + 27, START + 96, cfg, since=START) is None
    later = return_shift(s, START + 96, START + 160, cfg, since=START)
    assert later is not None
    assert abs(later[0]) < 0.1


@pytest.mark.parametrize("draw", [False, True])
def test_daily_levels_tell_a_pressure_leak_from_a_draw_following_the_heat(
    world, draw: bool
) -> None:
    """Hour by hour a leak driven by the network's pressure (highest at night) and a
    consumer drawing coolant with the heat it takes look alike; day by day the leak's
    coolant stays level whatever the weather while the draw follows each day's heat."""
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    per_m3 = _heat_per_m3(hours.size)
    on = (hours >= START) & (hours < START + 168)
    if draw:  # coolant in proportion to the flats' heat (kWh), priced at the building's ΔT
        extra = 0.004 * w.true.sum(axis=0) * per_m3
    else:  # m³/h following the pressure over the day, the same every day
        extra = 0.25 * (1 + 0.3 * np.cos(2 * np.pi * (hours % 24 - 1) / 24)) * per_m3
    s = replace(w.series(np.where(on, extra, 0.0)), heat_per_m3=per_m3)
    change = Change("use", START, START + 168, 0.0, 100.0, np.zeros(hours.size), {})
    assert level_days(change_series(s), change, ExcessSettings()) is (not draw)


def test_a_drift_is_reported_once_its_error_reached_the_smallest_reported(world) -> None:
    """A register drifting from 0 to +10 % over 10 days reads right near its start: it
    is reported when its error reached 3 % (day 3), not at the fitted ramp's start."""
    w = world(seed=5)
    hours = np.arange(w.true.shape[1])
    clean = w.true.sum(axis=0) + w.losses
    error = 0.10 * np.clip((hours + 1 - START) / 240, 0, 1)
    (d,) = diagnose_group(replace(w.series(error * clean), heat_per_m3=_heat_per_m3(hours.size)))
    assert d.kind == "faulty_balance_meter"
    assert abs(d.episode.confirmed - (START + 72)) <= 24


def test_a_short_share_of_the_use_may_be_a_leak(world) -> None:
    """Two days of 8 % of the flats' heat: too few days to tell a consumer's draw from a
    leak whose flow follows the pressure, so the finding names both."""
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    on = (hours >= START) & (hours < START + 48)
    (d,) = diagnose_group(w.series(np.where(on, 0.08 * w.true.sum(axis=0), 0.0)))
    assert d.kind == "unauthorised_connection"
    assert "leak" in d.evidence["also_possible"]


def test_days_of_an_over_registering_meter_follow_the_flow(world) -> None:
    """A register 6 % high from one hour on: each day's excess follows that day's flow,
    so its daily levels rule out a leak (whose daily volume would stay level)."""
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    on = (hours >= START) & (hours < START + 168)
    extra = np.where(on, 0.06 * (w.true.sum(axis=0) + w.losses), 0.0)
    s = replace(w.series(extra), heat_per_m3=_heat_per_m3(hours.size))
    change = Change("scale", START, START + 168, 0.06, 100.0, np.zeros(hours.size), {})
    assert level_days(change_series(s), change, ExcessSettings()) is False


def test_an_under_reading_ending_where_a_larger_excess_begins_is_its_edge() -> None:
    """A ramp (under- or over-reading) whose error vanishes the hour a larger excess
    begins is the fit shaping that excess's edge; one ending two days before it is a
    faulty meter."""
    n = 35 * 24
    use = np.full(n, 100.0)

    excess = _flat_change("use", START, START + 120, 0.12)
    for coef in (-0.06, 0.06):
        for end, kind in ((START + 3, None), (START - 48, "faulty_balance_meter")):
            edge = _flat_change("ramp", end - 30, end, coef)
            assert _change_kind(edge, [excess], 1.1 * use, ExcessSettings()) == kind


@pytest.mark.parametrize(("seed", "second"), [(4, 144), (5, 96), (6, 144)])
def test_a_second_leak_beginning_while_the_first_goes_on_is_found_when_it_began(
    world, seed: int, second: int
) -> None:
    """A leak of 3 m³ worth per hour from day 25 on and a second alike from days later
    on, both to the end: two leaks, the second from when it began. The fit may read
    them as one larger excess from the first one's start with a negative correction
    until the second began; that correction is the excess rising, not the balance
    meter under-reading from the hour a leak began."""
    w = world(seed=seed)
    hours = np.arange(w.true.shape[1])
    extra = np.where(hours >= START, 3.0, 0.0) + np.where(hours >= START + second, 3.0, 0.0)
    leaks = sorted(
        (d for d in diagnose_group(w.series(extra)) if d.kind == "leak"),
        key=lambda d: d.episode.start,
    )
    assert len(leaks) == 2
    assert abs(leaks[0].episode.start - START) <= 12
    assert abs(leaks[1].episode.start - (START + second)) <= 12
    assert leaks[1].slot != leaks[0].slot


def test_a_faulty_sensor_of_the_members_does_not_move_the_return_verdict(world) -> None:
    """A leak for five days (its water never returns: the building's ΔT stays its
    risers' mix) while one riser's pair read swapped from a week before it to half a day
    into it, moving the mix 0.6 °C: measured against the faulty week, the return seems
    to move and calls the leak a tapping-in; without the hours the sensor check found
    faulty there is no week to measure against, and it is a leak."""
    rng = np.random.default_rng(3)
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    per_m3 = _heat_per_m3(hours.size)
    mix = 15 + 2 * np.sin(2 * np.pi * hours / 240) + rng.normal(0, 0.03, hours.size)
    during = (hours >= START) & (hours < START + 120)
    swapped = (hours >= START - 168) & (hours < START + 12)
    s = replace(
        w.series(np.where(during, 0.15 * per_m3, 0.0)),
        heat_per_m3=per_m3,
        balance_dt=0.9 * mix + 1.0 + rng.normal(0, 0.03, hours.size),
        members_dt=mix + 0.6 * swapped,
    )
    (seen,) = diagnose_group(s)
    assert seen.kind == "unauthorised_connection"
    t0 = datetime(2025, 12, 1, tzinfo=UTC)
    data = SimpleNamespace(hours=[t0 + timedelta(hours=int(h)) for h in hours])
    sensor = SimpleNamespace(
        first_hour=t0 + timedelta(hours=START - 168), last_hour=t0 + timedelta(hours=START + 11)
    )
    (d,) = diagnose_group(_without_faulty_sensors(data, s, [sensor]))
    assert d.kind == "leak"


def test_the_alert_of_a_faults_pieces_lists_what_any_piece_may_be() -> None:
    """A drift fitted as a ramp (a loss growing from nothing fits as well: "or leak")
    and, 9 h later, a scale of the reading (a draw of a share of the flow fits as well):
    one fault, one alert (the first piece's slot), and that alert says the fault may
    be any of them."""
    cfg = ExcessSettings()
    ramp = Diagnosis(
        Episode(600, 640, 660, False), "faulty_balance_meter", {"also_possible": ["leak"]}
    )
    scale = Diagnosis(
        Episode(609, 620, 660, False),
        "faulty_balance_meter",
        {"also_possible": ["unauthorised_connection", "leak"]},
    )
    first, second = with_slots([ramp, scale], cfg.quiet_to_close, cfg.together_hours)
    assert first.slot == second.slot
    assert first.evidence["also_possible"] == ["leak", "unauthorised_connection"]


def test_a_drift_beginning_and_ending_with_a_larger_excess_is_its_shape() -> None:
    """The ratio of the balance meter to its subscribers moving while a larger excess
    runs, and only then (a ramp beginning and ending with a leak, within hours each), is
    that excess's shape: no faulty balance meter. One rising inside it a day later is
    found, and may as well be more water lost or drawn off; alone it is the register's."""
    n = 35 * 24
    use = np.full(n, 100.0)

    cfg = ExcessSettings()
    leak = _flat_change("step", START, START + 120, 0.15)
    opening = _flat_change("ramp", START - 6, START + 123, 0.06)
    assert _change_kind(opening, [leak], 1.1 * use, cfg) is None
    rise = _flat_change("ramp", START + 24, START + 96, 0.06)
    assert _change_kind(rise, [leak], 1.1 * use, cfg) == "faulty_balance_meter"
    also = _also_possible(rise, "faulty_balance_meter", cfg, [leak])
    assert {"leak", "unauthorised_connection"} <= set(also)
    assert _also_possible(rise, "faulty_balance_meter", cfg, []) == []


def test_a_constant_loss_may_always_be_a_draw_returning_nothing() -> None:
    """Water lost at the supply temperature and water drawn off and never returned are
    the same to every meter: a leak names the unauthorised draw as also possible even
    where a constant fits far better than any other shape (only a moved return, which
    makes it a tapping-in, tells them apart)."""
    n = 35 * 24
    step = np.where(np.arange(n) >= START, 0.5, 0.0)
    leak = Change("step", START, n, 0.5, 1e4, step, {"use": 900.0, "scale": 400.0})
    assert _also_possible(leak, "leak", ExcessSettings()) == ["unauthorised_connection"]


def test_a_short_over_registering_may_be_a_pressure_leak(world) -> None:
    """Two days of a register 8 % high: hour by hour a leak whose flow follows the
    network's pressure fits a share of the flow as well, and two days are too few for
    the days' flow to rule it out: the finding names a leak and a draw beside the meter."""
    w = world(seed=4)
    hours = np.arange(w.true.shape[1])
    on = (hours >= START) & (hours < START + 48)
    extra = np.where(on, 0.08 * (w.true.sum(axis=0) + w.losses), 0.0)
    (d,) = diagnose_group(replace(w.series(extra), heat_per_m3=_heat_per_m3(hours.size)))
    assert d.kind == "faulty_balance_meter"
    assert {"leak", "unauthorised_connection"} <= set(d.evidence["also_possible"])


def test_a_drift_inside_a_larger_drift_of_the_other_sign_is_its_error_moving() -> None:
    """One register has one error at a time: a balance meter over-registering by 10 %
    whose plateau sags by 8 % for two days is one finding, not also an under-reading
    meter. The sag alone is one; a rise inside the sag (itself part of the plateau) is
    judged on its own."""
    n = 35 * 24
    use = np.full(n, 100.0)

    cfg = ExcessSettings()
    plateau = _flat_change("settled", START, n, 0.10)
    sag = _flat_change("scale", START + 96, START + 144, -0.08)
    assert _change_kind(sag, [plateau], 1.1 * use, cfg) is None
    assert _change_kind(sag, [], 1.1 * use, cfg) == "faulty_balance_meter"
    rise = _flat_change("ramp", START + 110, START + 140, 0.06)
    assert _change_kind(rise, [plateau, sag], 1.1 * use, cfg) == "faulty_balance_meter"


def test_a_level_inside_a_larger_over_registering_drift_may_be_the_register() -> None:
    """A share of the use that rises and falls again inside a balance meter drifting 10 %
    high may be that register's error changing its pace: the finding names the faulty
    balance meter as also possible; alone, the shapes decide."""
    cfg = ExcessSettings()
    drift = _flat_change(
        "settled", START, START + 96, 0.10, alternatives={"step": 500.0, "scale": 500.0}
    )
    piece = _flat_change(
        "use", START + 30, START + 60, 0.02, alternatives={"step": 500.0, "scale": 500.0}
    )
    assert "faulty_balance_meter" in _also_possible(piece, "unauthorised_connection", cfg, [drift])
    assert _also_possible(piece, "unauthorised_connection", cfg, []) == []
