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

import numpy as np
import numpy.typing as npt

from balans_balance.medians import median as _median

FloatArray = npt.NDArray[np.float64]
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Band:
    median: FloatArray
    low: FloatArray
    high: FloatArray
    anomalous: npt.NDArray[np.bool_]


def _stats(ref: FloatArray, min_scale: float) -> tuple[float, float]:
    m = _median(ref)
    return m, max(MAD_TO_SIGMA * _median(np.abs(ref - m)), min_scale)


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
    """
    n = values.size
    median = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    anomalous = np.zeros(n, dtype=bool)
    known = ~np.isnan(values)
    learnable = known if excluded is None else known & ~excluded
    max_lookback = window * lookback_windows
    class_ids = np.unique(classes)
    class_window = {
        c: max(min_points, round(window * np.count_nonzero(classes == c) / max(n, 1)))
        for c in class_ids
    }
    at = {c: np.flatnonzero(classes == c) for c in class_ids}  # each class's positions
    for start in range(min_history, n, block):
        stop = min(n, start + block)
        lo = max(0, start - max_lookback)
        for c in class_ids:
            first, mid, last = np.searchsorted(at[c], (lo, start, stop)).tolist()
            here = at[c][mid:last]
            if here.size == 0:
                continue
            past = at[c][first:mid]  # the class's positions in lo..start
            ok = learnable[past]
            normal = past[ok & ~anomalous[past]]
            if normal.size < min_points:  # a new regime: accept recent history as normal
                normal = past[ok]
                if normal.size < min_points:
                    continue
            m, s = _stats(values[normal[-class_window[c] :]], min_scale)
            median[here] = m
            scale[here] = s
            anomalous[here] = known[here] & (np.abs(values[here] - m) > k * s)
    return Band(median=median, low=median - k * scale, high=median + k * scale, anomalous=anomalous)
