"""Normal bands learned per series: robust statistics over a rolling window, by class.

A band is median ± k·scale of the *past normal* values of the same class (day hours
against day hours, night against night), where scale is the MAD scaled to a standard
deviation. The band is learned afresh for every block of hours (a day) from the values
before it that were inside their own band, so a sustained anomaly never teaches the
band to accept it: the band stays frozen at the last normal level. Only when too few
normal values remain within ``max_lookback`` (a lasting change of regime) is the band
learned again from everything recent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from balans_balance.medians import median_of

FloatArray = npt.NDArray[np.float64]
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Band:
    median: FloatArray
    low: FloatArray
    high: FloatArray
    anomalous: npt.NDArray[np.bool_]


def learn_band(
    values: FloatArray,
    classes: npt.NDArray[np.int_],
    *,
    window: int,
    k: float,
    min_scale: float,
    min_points: int = 24,
    block: int = 24,
    lookback_windows: int = 4,
    min_history: int = 168,
    excluded: npt.NDArray[np.bool_] | None = None,
) -> Band:
    """Band for every position of ``values`` from earlier normal values of the same class.

    ``window`` is in hours of the whole series; each class learns from its own share
    of it (14 days = 336 h gives the night class, a quarter of the day, 84 values).
    ``min_scale`` keeps a perfectly quiet history from giving a zero-width band; no
    band is given in the first ``min_history`` positions (too little to know "normal").
    ``excluded`` positions (a fault's span while its alert is open) are never learned
    from, not even when a new regime is accepted: the band stays frozen across them.

    A class's band reads only that class's positions, so each class is learned on its
    own, block after block (:func:`_learn_class`, compiled: a band is learned four times
    a group and turn, and the loop over its days in numpy cost 1 ms each).
    """
    n = values.size
    median = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    anomalous = np.zeros(n, dtype=bool)
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values)
    learnable = known if excluded is None else known & ~excluded
    for c in np.unique(classes):
        at = np.flatnonzero(classes == c)  # the class's positions
        _learn_class(
            values,
            known,
            learnable,
            at,
            max(min_points, round(window * at.size / max(n, 1))),
            window * lookback_windows,
            min_history,
            block,
            min_points,
            float(k),
            float(min_scale),
            median,
            scale,
            anomalous,
        )
    return Band(median=median, low=median - k * scale, high=median + k * scale, anomalous=anomalous)


@numba.njit(cache=True)
def _learn_class(
    values: FloatArray,
    known: npt.NDArray[np.bool_],
    learnable: npt.NDArray[np.bool_],
    at: npt.NDArray[np.int_],
    class_window: int,
    max_lookback: int,
    min_history: int,
    block: int,
    min_points: int,
    k: float,
    min_scale: float,
    median: FloatArray,
    scale: FloatArray,
    anomalous: npt.NDArray[np.bool_],
) -> None:
    """One class's band, block by block: the median and scaled MAD of the last
    ``class_window`` of its earlier normal positions within ``max_lookback`` (all its
    learnable ones there when fewer than ``min_points`` are normal: a new regime)."""
    normal = np.empty(at.size, np.int64)
    for start in range(min_history, values.size, block):
        lo = max(0, start - max_lookback)
        first, mid = np.searchsorted(at, lo), np.searchsorted(at, start)
        last = np.searchsorted(at, min(values.size, start + block))
        if last == mid:
            continue
        count = 0
        for p in at[first:mid]:
            if learnable[p] and not anomalous[p]:
                normal[count] = p
                count += 1
        if count < min_points:  # a new regime: accept recent history as normal
            count = 0
            for p in at[first:mid]:
                if learnable[p]:
                    normal[count] = p
                    count += 1
            if count < min_points:
                continue
        ref = values[normal[max(0, count - class_window) : count]]
        m = median_of(ref)
        s = MAD_TO_SIGMA * median_of(np.abs(ref - m))
        if min_scale > s:
            s = min_scale
        for p in at[mid:last]:
            median[p] = m
            scale[p] = s
            anomalous[p] = known[p] and abs(values[p] - m) > k * s
