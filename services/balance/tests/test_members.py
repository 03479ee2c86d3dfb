"""The member detector on constructed series: each meter fault is found and its meter
named; flats away, weekends, cold snaps and plain noise raise nothing."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from balans_balance.detectors.leak_tapping_balance_meter import diagnose_group
from balans_balance.detectors.meter_faults import (
    METER_FAULTS,
    MemberSettings,
    deficit_follows_use,
    member_shifts,
)
from balans_balance.detectors.peers import daily_sums, peer_model

START = 600  # the fault begins after 25 days of normal history


def _shifts(world_, **kwargs: object) -> dict[int, set[str]]:
    s = world_.series(**kwargs)
    quantum = np.ones(s.members.shape[0])
    out: dict[int, set[str]] = {}
    for shift in member_shifts(s, world_.registered.copy(), quantum):
        out.setdefault(shift.member, set()).add(shift.verdict)
    return out


def _blamed(shifts: dict[int, set[str]]) -> dict[int, set[str]]:
    return {m: v & set(METER_FAULTS) for m, v in shifts.items() if v & set(METER_FAULTS)}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("cold_snap", [False, True])
def test_no_meter_blamed_on_normal_use(world, seed: int, cold_snap: bool) -> None:
    """Noise, weekends, two flats away for two weeks and a cold snap blame no meter."""
    assert _blamed(_shifts(world(seed=seed, cold_snap=cold_snap))) == {}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_stuck_register_is_named(world, seed: int) -> None:
    """A register that stops counting is a stuck meter, and only that one."""
    w = world(seed=seed)
    w.distort(7, 0.0, START)
    assert _blamed(_shifts(w)) == {7: {"stuck_meter"}}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_magnet_confirmed_by_the_balance(world, seed: int) -> None:
    """A meter slowed to 40 % (no tamper flag) while the balance meter still sees the
    heat is a magnet; a flat truly using 40 % three days later (its meter right) is not blamed."""
    w = world(seed=seed)
    w.distort(7, 0.4, START)
    w.true[11, START + 72 :] *= 0.4
    w.distort(11, 1.0, 0)  # registers its (now lower) true use faithfully
    shifts = _shifts(w)
    assert _blamed(shifts) == {7: {"magnet"}}
    assert shifts[11] == {"use_changed"}


def test_tamper_flag_makes_a_magnet(world) -> None:
    """A drop with the module's tamper flag up is a magnet whatever the balance says,
    and its evidence says how much of the drop the balance meter saw."""
    w = world(seed=4)
    w.distort(3, 0.6, START)
    w.tamper[3, START : START + 30] = True
    assert _blamed(_shifts(w)) == {3: {"magnet"}}
    s = w.series()
    (magnet,) = [x for x in member_shifts(s, w.registered.copy(), np.ones(40)) if x.member == 3]
    assert 0.5 <= magnet.evidence["closure"] <= 1.5


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("error", [-0.15, 0.15])
def test_drift_is_named(world, seed: int, error: float) -> None:
    """A register whose error grows to ±15 % over six days (then is mended) is a
    drifting meter (hourly noise 5 %: a drift is found where the noise allows)."""
    w = world(seed=seed, noise=0.05)
    hours = np.arange(w.true.shape[1])
    ramp = 1 + error * np.clip((hours - START) / 144, 0, 1) * (hours < START + 144)
    w.distort(5, ramp[START:], START)
    assert _blamed(_shifts(w)) == {5: {"drifting_meter"}}


def test_peer_model_residuals_are_unit_noise(world) -> None:
    """On normal use the residuals against the peers have about unit spread, so the
    detection threshold means what it says."""
    daily, _ = daily_sums(world(seed=5).registered)
    pm = peer_model(daily, np.ones(daily.shape[0]))
    z = pm.z[:, 20, 20:]
    z = z[np.isfinite(z)]
    assert 0.6 < float(np.std(z)) < 1.5


def test_over_reading_meter_is_named(world) -> None:
    """A meter suddenly over-reading by 60 % (the balance meter saw no such use) is a
    faulty (drifting) meter, named."""
    w = world(seed=1)
    w.distort(7, 1.6, START)
    assert _blamed(_shifts(w)) == {7: {"drifting_meter"}}


@pytest.mark.parametrize(("factor", "flag"), [(0.0, False), (0.3, True), (1.6, False)])
def test_named_meter_leaves_no_group_fault(world, factor: float, flag: bool) -> None:
    """Once what a named meter missed is added back to the subscribers, the group shows
    no leak, tapping-in or faulty balance meter of its own (member 7 is a large flat,
    so its fault moves the building's balance clearly)."""
    w = world(seed=2)
    w.true[7] *= 4
    w.distort(7, factor, START)
    w.tamper[7, START : START + 5] = flag
    s = w.series()
    shifts = member_shifts(s, w.registered.copy(), np.ones(s.members.shape[0]))
    missed = sum(x.deficit for x in shifts if x.verdict in METER_FAULTS)
    assert diagnose_group(s) != []  # uncorrected, the meter's fault shows in the balance
    assert diagnose_group(replace(s, subscribers=s.subscribers + missed)) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("lag", [24, -48])
def test_magnet_next_to_a_leak_is_confirmed_with_the_leak_in_the_balance(
    world, seed: int, lag: int
) -> None:
    """A meter slowed to 40 % while a leak of 6 % of the balance begins a day before it
    (or two days after): the balance moves by both. Given the group's change (what the
    leak adds), the member's confirmation accounts for it: the magnet is named with a
    closure near 1 (without it, the leak's move counts as the meter's and the closure
    runs off the grid)."""
    w = world(seed=seed)
    w.distort(7, 0.4, START)
    hours = np.arange(w.true.shape[1])
    clean = w.true.sum(axis=0) + w.losses
    leak = np.where(hours >= START - lag, 0.06 * float(np.mean(clean)), 0.0)
    s = w.series(leak)
    quantum = np.ones(s.members.shape[0])
    shifts = member_shifts(s, w.registered.copy(), quantum, group_changes=leak[None, :])
    magnet = next(sh for sh in shifts if sh.member == 7)
    assert magnet.verdict == "magnet"
    assert 0.6 <= magnet.evidence["closure"] <= 1.5
    assert _blamed({sh.member: {sh.verdict} for sh in shifts}) == {7: {"magnet"}}


def test_a_heat_meters_deficit_following_the_use_is_a_drift() -> None:
    """Five days of one weather, 6-hour sums: each day's sums are alike, but the nights
    are colder than the afternoons. A register reading 12 % low misses a share of every
    block's heat (a drift); a thermostat turned down by the same heat on average lowers
    every block alike (a change of use); a use that does not vary at all cannot tell
    them apart."""
    cfg = MemberSettings()
    rng = np.random.default_rng(3)
    blocks = np.arange(20)
    use = 10.0 + 3.0 * np.cos(2 * np.pi * blocks / 4)  # kWh per 6 h: cold nights
    noise = rng.normal(0.0, 0.1, blocks.size)
    drift = deficit_follows_use(use, 0.88 * use + noise, 12)
    assert drift is not None
    assert drift[0] > cfg.follow_f
    assert abs(drift[1] - 0.12) < 0.02
    setback = deficit_follows_use(use, use - 0.12 * use.mean() + noise, 12)
    assert setback is not None
    assert setback[0] <= cfg.follow_f
    steady = np.full(blocks.size, 10.0)
    alike = deficit_follows_use(steady, 0.88 * steady + noise, 12)
    assert alike is not None
    assert alike[0] <= cfg.follow_f
    assert deficit_follows_use(use[:8], 0.88 * use[:8], 12) is None
    # the same days as daily sums: alike, so no share of them tells a drift apart
    daily = use.reshape(5, 4).sum(axis=1)
    by_day = deficit_follows_use(daily, 0.88 * daily + noise[:5], 3)
    assert by_day is not None
    assert by_day[0] <= cfg.follow_f


def _stood_still_then_slowed(w, slowed_from: int, tamper: bool) -> list[tuple[int, str]]:
    """(start, verdict) of member 7's findings when its register stands still for two days
    from START and counts 40 % of the use from ``slowed_from`` (with the tamper flag up
    for six hours then if ``tamper``)."""
    factor = np.ones(w.true.shape[1])
    factor[START : START + 48] = 0.0
    factor[slowed_from:] = 0.4
    w.distort(7, factor, 0)
    if tamper:
        w.tamper[7, slowed_from : slowed_from + 6] = True
    return sorted(
        (x.episode.start, x.verdict)
        for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
        if x.member == 7
    )


def test_a_tamper_flag_after_the_register_counted_again_is_the_next_faults(world) -> None:
    """A register that stands still for two days, counts again, and three days later
    slows to 40 % with its module's tamper flag up: a stuck meter (the flag was not up
    while it stood still), then a magnet, not a magnet from the first still hour."""
    found = _stood_still_then_slowed(world(seed=2), slowed_from=START + 120, tamper=True)
    assert [v for _, v in found] == ["stuck_meter", "magnet"]
    assert abs(found[0][0] - START) <= 2
    assert found[1][0] >= START + 48


def test_a_slowed_meter_after_its_register_stood_still_is_a_second_fault(world) -> None:
    """A register that stands still for two days and then counts 40 % of the use for
    five days: a stuck meter, then a second finding from the day after it counted again
    (the balance still sees the heat: a magnet), not one stuck episode hiding the rest."""
    found = _stood_still_then_slowed(world(seed=2), slowed_from=START + 48, tamper=False)
    assert [v for _, v in found] == ["stuck_meter", "magnet"]
    assert abs(found[0][0] - START) <= 2
    assert START + 48 <= found[1][0] <= START + 72


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_fault_is_dated_where_its_days_went_away_and_stayed(world, seed: int) -> None:
    """A meter slowed to 40 % from START, with one day of the flat's own use 12 % low
    three days earlier: the magnet begins at START (the fit of the change may begin
    days before it; a lone low day before is the flat's noise, not the fault)."""
    w = world(seed=seed)
    w.true[7, START - 72 : START - 48] *= 0.88
    w.distort(7, 0.4, START)
    (magnet,) = [
        x for x in member_shifts(w.series(), w.registered.copy(), np.ones(40)) if x.member == 7
    ]
    assert magnet.verdict == "magnet"
    assert abs(magnet.episode.start - START) <= 2  # the hour, within a pulse's rounding


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_second_departure_of_one_meter_is_confirmed_after_it_began(world, seed: int) -> None:
    """A register over-reading by 30 % for two days from START, right for three days,
    then over-reading again: two episodes, the second one confirmed after it began (the
    first one's crossing does not date it)."""
    w = world(seed=seed)
    factor = np.ones(w.true.shape[1])
    factor[START : START + 48] = 1.3
    factor[START + 120 :] = 1.3
    w.distort(7, factor, 0)
    episodes = sorted(
        (
            x.episode
            for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
            if x.member == 7
        ),
        key=lambda e: e.start,
    )
    assert len(episodes) == 2
    assert episodes[0].start == START
    assert START + 96 <= episodes[1].start <= episodes[1].confirmed


def _night_owl(w) -> np.ndarray:
    """Member 7 uses its heat mostly in the evening (2.5x its usual from 17:00 to 23:00,
    0.7x otherwise): its own habit, not the group's."""
    hours = np.arange(w.true.shape[1])
    habit = np.where((hours % 24 >= 17) & (hours % 24 < 23), 2.5, 0.7)
    w.true[7] *= habit
    return habit


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_drift_is_told_by_the_flats_own_hours(world, seed: int) -> None:
    """A heat meter reading 15 % low from START in a flat whose own hours differ from
    the group's (its evening use): its deficit follows its own predicted use block by
    block, so it is a drift although the balance cannot confirm one flat. Predicted
    with the group's hours, the evening blocks' misfit drowned the share."""
    w = world(seed=seed)
    _night_owl(w)
    w.distort(7, 0.85, START)
    shifts = [
        x for x in member_shifts(w.series(), w.registered.copy(), np.ones(40), heat=True)
        if x.member == 7
    ]  # fmt: skip
    assert {x.verdict for x in shifts} == {"drifting_meter"}
    assert min(x.evidence["deficit_follows_use_f"] for x in shifts) > 10


@pytest.mark.parametrize("seed", [1, 3, 4, 5])
def test_a_flat_using_a_constant_less_is_a_change_of_use(world, seed: int) -> None:
    """The same flat using a constant 15 % of its mean less from START (thermostat
    down), its meter right: the deficit stays level, a change of use."""
    w = world(seed=seed)
    _night_owl(w)
    w.true[7, START:] = np.maximum(w.true[7, START:] - 0.15 * w.true[7, :START].mean(), 0)
    w.distort(7, 1.0, 0)
    shifts = [
        x for x in member_shifts(w.series(), w.registered.copy(), np.ones(40), heat=True)
        if x.member == 7
    ]  # fmt: skip
    assert [x.verdict for x in shifts] == ["use_changed"]
    assert shifts[0].evidence["deficit_follows_use_f"] < -4


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_a_level_excess_the_balance_barely_confirms_is_no_drift_of_a_flat(world, seed: int) -> None:
    """A flat's meter registering a constant 30 % of its mean more from START while the
    balance meter does not see it (the balance confirms it, 2-3 noise units): a
    register off by a factor would be off most on cold nights; a constant excess is the
    shape of a flat using more (UA x a higher setpoint), so a change of use, not a
    drifting meter. A riser's flow does not follow its flats' use: there the balance's
    verdict stands."""
    w = world(seed=seed)
    extra = np.where(np.arange(w.true.shape[1]) >= START, 0.3 * w.true[7, :START].mean(), 0.0)
    w.registered[7] = np.diff(np.floor(np.cumsum(w.true[7] + extra)), prepend=0)

    def verdicts(flats: np.ndarray) -> list[str]:
        shifts = member_shifts(w.series(), w.registered.copy(), np.ones(40), heat=True, flats=flats)
        return [x.verdict for x in shifts if x.member == 7]

    assert verdicts(np.ones(40, dtype=bool)) == ["use_changed"]
    assert verdicts(np.zeros(40, dtype=bool)) == ["drifting_meter"]


def test_a_magnet_then_a_register_that_stopped_are_two_faults(world) -> None:
    """A magnet slowing the register to 40 % with its module's tamper flag up from START,
    and 60 hours later the register standing still while the flag stays up: a magnet
    from the flag's hour, then a stuck meter from the hour it stopped (the flag rose
    while it still counted: that is the magnet's), each its own finding."""
    w = world(seed=2)
    factor = np.ones(w.true.shape[1])
    factor[START + 5 :] = 0.4
    factor[START + 60 : START + 160] = 0.0
    w.distort(7, factor, 0)
    w.tamper[7, START + 5 : START + 160] = True
    found = sorted(
        (x.episode.start, x.verdict)
        for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
        if x.member == 7
    )
    assert [v for _, v in found[:2]] == ["magnet", "stuck_meter"]
    assert found[0][0] == START + 5
    assert abs(found[1][0] - (START + 60)) <= 2


def test_a_departure_before_the_register_stood_still_is_its_own_fault(world) -> None:
    """A meter slowed to 40 % from START (no flag; the balance still sees the heat) whose
    register stands still from four days later: a magnet from START, then a stuck meter,
    not one stuck episode that hides the days it read low."""
    w = world(seed=3)
    factor = np.ones(w.true.shape[1])
    factor[START:] = 0.4
    factor[START + 96 :] = 0.0
    w.distort(7, factor, 0)
    found = sorted(
        (x.episode.start, x.verdict)
        for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
        if x.member == 7
    )
    assert [v for _, v in found] == ["magnet", "stuck_meter"]
    assert found[0][0] == START
    assert abs(found[1][0] - (START + 96)) <= 2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_fault_is_dated_to_its_hour_within_the_day(world, seed: int) -> None:
    """A meter slowed to 40 % from 14 hours into a day: the days date it to that day (or,
    through a day of the flat's noise, the day before); its hourly deficit dates it to
    the hour it began."""
    w = world(seed=seed)
    w.distort(7, 0.4, START + 14)
    (magnet,) = [
        x for x in member_shifts(w.series(), w.registered.copy(), np.ones(40)) if x.member == 7
    ]
    assert magnet.verdict == "magnet"
    assert abs(magnet.episode.start - (START + 14)) <= 2


def _noisy_balance(w, seed: int) -> np.ndarray:
    """Noise on the balance meter as large as a flat's use, hour by hour: one flat is too
    small a share of the building for the balance to confirm its meter's fault."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 3.0 * float(w.true[7].mean()), w.true.shape[1])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_flat_meter_losing_more_than_its_occupants_can_is_a_magnet(world, seed: int) -> None:
    """A flat's heat meter slowed to 40 % (no flag) where the balance cannot confirm one
    flat: its deficit follows the use and is more than a setpoint can take off a flat,
    so it is a magnet. A riser's meter is judged by its ΔT instead (left a change of
    use here), and a flat using a constant 55 % of its mean less (its occupants gone,
    the meter right) stays a change of use: its deficit is a level."""
    w = world(seed=seed)
    w.distort(7, 0.4, START)
    s = w.series(_noisy_balance(w, seed))

    def verdicts(flats: np.ndarray) -> list[str]:
        shifts = member_shifts(s, w.registered.copy(), np.ones(40), heat=True, flats=flats)
        return [x.verdict for x in shifts if x.member == 7]

    assert verdicts(np.ones(40, dtype=bool)) == ["magnet"]
    assert verdicts(np.zeros(40, dtype=bool)) == ["use_changed"]
    left = world(seed=seed)
    left.true[7, START:] = np.maximum(left.true[7, START:] - 0.55 * left.true[7, :START].mean(), 0)
    left.distort(7, 1.0, 0)
    shifts = member_shifts(
        left.series(_noisy_balance(left, seed)),
        left.registered.copy(),
        np.ones(40),
        heat=True,
        flats=np.ones(40, dtype=bool),
    )
    assert [x.verdict for x in shifts if x.member == 7] == ["use_changed"]


def test_a_flag_raised_days_after_the_register_stopped_is_a_magnet_laid_on_later(world) -> None:
    """A register standing still from START, its module raising the tamper flag 60 hours
    later while it still stands still: it stopped by itself (a magnet raises the flag as
    it is laid on), so a stuck meter from START, then a magnet from the flag's hour; a
    flag rising as the register stops stays one magnet."""
    w = world(seed=2)
    w.distort(7, 0.0, START)
    w.tamper[7, START + 60 :] = True
    found = sorted(
        (x.episode.start, x.episode.end, x.verdict)
        for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
        if x.member == 7
    )
    assert [v for *_, v in found] == ["stuck_meter", "magnet"]
    assert abs(found[0][0] - START) <= 2
    assert found[0][1] == START + 59
    assert found[1][0] == START + 60
    w.tamper[7, START + 3 :] = True
    assert {
        x.verdict
        for x in member_shifts(w.series(), w.registered.copy(), np.ones(40))
        if x.member == 7
    } == {"magnet"}
