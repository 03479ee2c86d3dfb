"""The group's daily level (the peers' reference) while several members are faulty at
once: registers known not to measure their use are left out of it, so the sound members
are not judged against a level that the faulty ones dragged down."""

from __future__ import annotations

import numpy as np
import pytest

from balans_balance.detectors.leak_tapping_balance_meter import GroupSeries
from balans_balance.detectors.meter_faults import METER_FAULTS, member_shifts
from balans_balance.detectors.peers import group_index

HOURS = 35 * 24
START = 600  # the faults begin after 25 days of normal history


def test_unsound_days_are_left_out_of_the_level() -> None:
    """Three of five members faulty on day 2 (a register stopped, one tampered with, a
    riser clogged): the median of all five is the faulty ones' (0.4); without the two
    known not to measure, the level is the sound members' (1.0)."""
    daily = np.ones((5, 4))
    daily[:3, 2] = [0.0, 0.4, 0.3]
    unsound = np.zeros_like(daily, dtype=bool)
    unsound[:2, 2] = True
    assert group_index(daily)[2] == pytest.approx(0.4)
    assert group_index(daily, unsound)[2] == pytest.approx(1.0)
    assert group_index(daily, unsound)[[0, 1, 3]] == pytest.approx(1.0)
    # a day on which no member is sound (one module's flag shared by every channel)
    # keeps its median rather than losing its level
    daily = np.ones((5, 4))
    daily[:, 3] = 0.5
    assert group_index(daily, np.ones_like(daily, dtype=bool))[3] == pytest.approx(0.5)


def _risers(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[riser, hour] the true flow of five risers (a weather swing, 1 % hourly noise)
    and the building meter's losses beside them."""
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS)
    outdoor = -2 + 4 * np.sin(2 * np.pi * (t // 24) / 20) + 2 * np.sin(2 * np.pi * t / 24)
    demand = np.maximum(18 - outdoor, 0)
    size = rng.uniform(0.8, 1.2, 5)
    true = 10 * size[:, None] * demand[None, :] * rng.lognormal(0, 0.01, (5, HOURS))
    return true, 0.05 * true.sum(axis=0) * rng.normal(1, 0.005, HOURS)


def _register(true: np.ndarray) -> np.ndarray:
    return np.diff(np.floor(np.cumsum(true, axis=-1)), axis=-1, prepend=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sound_members_beside_three_faulty_ones_are_not_blamed(seed: int) -> None:
    """Five risers: from the same hour one register stops, one is slowed to 40 % under a
    magnet that raised the module's tamper flag, and one riser's flow really falls to
    55 % (a clog: its meter right). The median over the five is then the clogged
    riser's; the stopped and the flagged registers measure nothing of the group's level,
    so the two sound risers stay what their peers predict and no meter of theirs is
    blamed, and the stopped and slowed ones are named."""
    true, losses = _risers(seed)
    true[2, START:] *= 0.55
    registered = _register(true)
    registered[0, START:] = 0.0
    registered[1, START:] = _register(0.4 * true[1, START:])
    tamper = np.zeros(true.shape, dtype=bool)
    tamper[1, START : START + 5] = True
    s = GroupSeries(
        balance=np.round(true.sum(axis=0) + losses),
        subscribers=registered.sum(axis=0),
        night=(np.arange(HOURS) % 24 >= 22) | (np.arange(HOURS) % 24 < 5),
        members=registered.copy(),
        tamper=tamper,
    )
    shifts = member_shifts(s, registered, np.ones(5), heat=True)
    blamed = {(x.member, x.verdict) for x in shifts if x.verdict in METER_FAULTS}
    assert (0, "stuck_meter") in blamed
    assert (1, "magnet") in blamed
    assert {m for m, _ in blamed} <= {0, 1}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_large_register_stopping_late_in_a_day_leaves_the_days_hours_alone(seed: int) -> None:
    """A riser carrying about a third of the flow stops counting at 22 h. That day its
    register stood still for hours, so the day is left out of the group's profile of
    the hours: what it missed is added back at 22-23 h and from then on, not spread
    over the morning (where the sound risers' hours would otherwise have drawn a
    third of the day's total)."""
    true, losses = _risers(seed)
    true[0] *= 2.5
    stop = START + 22
    registered = _register(true)
    registered[0, stop:] = 0.0
    s = GroupSeries(
        balance=np.round(true.sum(axis=0) + losses),
        subscribers=registered.sum(axis=0),
        night=(np.arange(HOURS) % 24 >= 22) | (np.arange(HOURS) % 24 < 5),
        members=registered.copy(),
        tamper=np.zeros(true.shape, dtype=bool),
    )
    (stuck,) = [x for x in member_shifts(s, registered, np.ones(5), heat=True) if x.member == 0]
    assert stuck.verdict == "stuck_meter"
    missed_late = stuck.deficit[stop : stop + 2]
    assert missed_late == pytest.approx(true[0, stop : stop + 2], rel=0.1)
    assert np.abs(stuck.deficit[START:stop]).max() < 0.1 * true[0, START:stop].mean()
