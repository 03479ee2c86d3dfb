"""Meter drifts beside other faults (issue 20): what a drift is told apart from when a
neighbouring meter shares its module's tamper flag, or when the balance speaks against
the meter."""

from __future__ import annotations

import numpy as np
import pytest

from balans_balance.detectors.meter_faults import member_shifts

START = 600  # the faults begin after 25 days of normal history


def _verdicts(w, member: int, **kwargs: object) -> list[str]:
    s = w.series()
    shifts = member_shifts(s, w.registered.copy(), np.ones(s.members.shape[0]), **kwargs)
    return [x.verdict for x in shifts if x.member == member]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("error", [0.15, -0.15])
def test_a_drift_on_a_channel_beside_a_magnet_is_no_magnet(world, seed: int, error: float) -> None:
    """Two meters on one module share its tamper flag: meter 5's error grows to ±15 %
    over six days while a magnet slows meter 3 to 40 % from a day later, raising the
    flag for four days. A magnet slows the register it is laid on, so the flag names
    the channel that lost the most over its hours (meter 3); meter 5 is judged by its own
    departure, a drifting meter (before, the shared flag made it a magnet too)."""
    w = world(seed=seed, noise=0.05)
    hours = np.arange(w.true.shape[1])
    w.distort(5, 1 + error * np.clip((hours[START:] - START) / 144, 0, 1), START)
    w.distort(3, 0.4, START + 24)
    w.tamper[3, START + 24 : START + 120] = True
    w.tamper[5] = w.tamper[3]  # the module's flag, on each of its channels
    assert _verdicts(w, 3) == ["magnet"]
    assert _verdicts(w, 5) == ["drifting_meter"]


@pytest.mark.parametrize("seed", [1, 3])
def test_a_flat_using_a_share_less_that_the_balance_refutes_is_no_drift(world, seed: int) -> None:
    """A large flat closes one of its radiators from START: it truly uses 15 % less at
    every hour, a share of its use (as a drifting register would miss), and its meter
    is right. Its deficit follows the use, but the balance meter, which sees the real
    heat, fits far worse with that miss added back (by more than 5.5 noise units): a
    change of use, not a drift. Its register missing the same share instead is named."""
    flats = np.ones(40, dtype=bool)
    closed = world(seed=seed)
    closed.true[7] *= 4
    closed.true[7, START:] *= 0.85
    closed.distort(7, 1.0, 0)
    assert _verdicts(closed, 7, heat=True, flats=flats) == ["use_changed"]
    drifted = world(seed=seed)
    drifted.true[7] *= 4
    drifted.distort(7, 0.85, START)
    assert _verdicts(drifted, 7, heat=True, flats=flats) == ["drifting_meter"]


def test_no_refutation_while_a_group_fault_overlaps(world) -> None:
    """The same closed radiator while the group has a fault of its own over the same
    days (a leak of 6 % of the balance from START): the leak's free weight in the
    balance's fit can take the move that was the flat's, so the balance refutes
    nothing (``refute_z`` 0); the evidence without the leak did refute it."""
    w = world(seed=1)
    w.true[7] *= 4
    w.true[7, START:] *= 0.85
    w.distort(7, 1.0, 0)
    hours = np.arange(w.true.shape[1])
    leak = np.where(hours >= START, 0.06 * float(np.mean(w.true.sum(axis=0))), 0.0)

    def refute(changes: np.ndarray | None) -> float:
        s = w.series(None if changes is None else leak)
        shifts = member_shifts(
            s, w.registered.copy(), np.ones(40), group_changes=changes, heat=True
        )
        return float(next(x for x in shifts if x.member == 7).evidence["refute_z"])

    assert refute(None) >= 5.5
    assert refute(leak[None, :]) == 0.0
