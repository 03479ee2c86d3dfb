"""The forecasts' daily sums of every meter at once have the bits ``np.bincount`` gives one
meter at a time, across both changes of summer time and with missing hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from balans_balance.analysis import daily_sums


def test_daily_sums_are_bincounts_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    hours = [start + timedelta(hours=h) for h in range(24 * 250)]  # March to November
    local = [h.astimezone(ZoneInfo("Europe/Chisinau")).date() for h in hours]
    days = sorted(set(local))
    day_of = np.array([days.index(d) for d in local])
    assert {23, 25} <= {int(n) for n in np.bincount(day_of)}  # both changes of summer time
    use = rng.gamma(0.5, 3.0, (30, len(hours))) * rng.choice([1e-3, 1.0, 1e3], (30, 1))
    use[rng.random(use.shape) < 0.1] = 0.0
    want = np.array([np.bincount(day_of, weights=row, minlength=len(days)) for row in use])
    assert daily_sums(use, day_of, len(days)).tobytes() == want.tobytes()
