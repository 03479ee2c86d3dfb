"""The EN 1434 class 2 cross-check of a heat meter's own kWh."""

from __future__ import annotations

import numpy as np

from balans_allocation.crosscheck import calculator_error_percent, disagreeing_hours


def test_calculator_error_class_2() -> None:
    """±(0.5 + Δθmin/Δθ) %: 0.65 % at 20 K, 1.5 % at 3 K with Δθmin = 3 K."""
    np.testing.assert_allclose(calculator_error_percent(np.array([20.0, 3.0])), [0.65, 1.5])


def test_flags_only_disagreement_beyond_class_and_pulse() -> None:
    """100 kWh recomputed at 20 K allows 0.65 kWh + one pulse each; 102 passes, 110 fails."""
    recomputed = np.array([100.0, 100.0, 100.0, np.nan])
    reported = np.array([100.0, 102.0, 110.0, 50.0])
    bad = disagreeing_hours(reported, recomputed, np.full(4, 20.0), 1.0, 1.0)
    assert bad.tolist() == [False, False, True, False]
    assert disagreeing_hours(np.array([101.0]), np.array([100.0]), np.array([20.0]), 0.1, 0.1)[0]
