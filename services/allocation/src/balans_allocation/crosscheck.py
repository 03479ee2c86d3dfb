"""EN 1434 cross-check of a heat meter against its own volume and temperatures.

Where a module carries a heat meter's kWh pulses *and* the same meter's volume pulses and
sensor pair, the server recomputes heat = V · k · Δθ and flags the hours in which the
meter's figure disagrees beyond what its accuracy class allows. The allowance is the
class 2 calculator error ±(0.5 + Δθmin/Δθ) % (EN 1434-1) plus one pulse of each channel,
the quantisation of an hourly pulse count.
"""

from __future__ import annotations

import numpy as np

DELTA_T_MIN_K = 3.0  # the smallest temperature difference the meter is specified for


def calculator_error_percent(delta_t_k: np.ndarray, delta_t_min_k: float = DELTA_T_MIN_K):
    """Maximum permissible calculator error of class 2 in percent, per hour."""
    with np.errstate(divide="ignore"):
        return 0.5 + delta_t_min_k / np.abs(delta_t_k)


def disagreeing_hours(
    reported_kwh: np.ndarray,
    recomputed_kwh: np.ndarray,
    delta_t_k: np.ndarray,
    pulse_kwh: float,
    recomputed_pulse_kwh: float,
) -> np.ndarray:
    """True where |reported − recomputed| exceeds the allowance (hours without data: False)."""
    allowance = (
        calculator_error_percent(delta_t_k) / 100.0 * np.abs(recomputed_kwh)
        + pulse_kwh
        + recomputed_pulse_kwh
    )
    difference = np.abs(reported_kwh - recomputed_kwh)
    with np.errstate(invalid="ignore"):
        return np.nan_to_num(difference, nan=0.0) > np.nan_to_num(allowance, nan=np.inf)
