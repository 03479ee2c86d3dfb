"""Silent members are estimated from the reporting ones without bias."""

from __future__ import annotations

import numpy as np

from balans_balance.analysis import fill_missing_members


def test_two_silent_members_do_not_pull_each_other_down() -> None:
    """With 8 of 20 members silent for two days, each is estimated at its own level
    times the group's level that hour (within 2 %), not at a share of a shrunken total."""
    rng = np.random.default_rng(3)
    hours = 24 * 20
    level = rng.uniform(0.5, 2.0, 20)
    weather = 1 + 0.3 * np.sin(np.arange(hours) / 30)
    true = level[:, None] * weather[None, :] * rng.lognormal(0, 0.05, (20, hours))
    own = true.copy()
    own[:8, 240:288] = np.nan
    filled = fill_missing_members(own)
    estimate = filled[:8, 240:288].sum(axis=1)
    actual = true[:8, 240:288].sum(axis=1)
    assert np.all(np.abs(estimate / actual - 1) < 0.02)
    assert np.array_equal(filled[8:], true[8:])


def test_hours_nobody_reported_stay_unknown() -> None:
    """An hour without any member's reading is unknown (NaN), not zero use."""
    own = np.ones((3, 48))
    own[:, 10] = np.nan
    filled = fill_missing_members(own)
    assert np.isnan(filled[:, 10]).all()
    assert np.isfinite(np.delete(filled, 10, axis=1)).all()
