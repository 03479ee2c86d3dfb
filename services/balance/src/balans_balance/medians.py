"""Medians that skip NaN, as numpy's ``np.nanmedian`` computes them, without its cost.

``np.nanmedian`` over a short axis goes through masked arrays (about a millisecond a call);
the detectors take thousands of such medians per event. Here the values are sorted once
along the axis (NaN sort last), counted, and the middle value (odd count) or the mean of
the two middle values (even count) taken, which is what numpy does: the results are the
same to the bit, NaN where a slice has no value. Trailing medians keep each window
sorted as it slides (numba), which gives the same values.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _middle(s: FloatArray) -> FloatArray:
    """The NaN-skipping median along the last axis of ``s``, sorted along that axis."""
    n = s.shape[-1]
    k = n - np.count_nonzero(np.isnan(s), axis=-1)  # values per slice
    lo = np.take_along_axis(s, (np.maximum(k - 1, 0) // 2)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, (k // 2 - (k == 0))[..., None], axis=-1)[..., 0]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def nanmedian(a: FloatArray, axis: int = 0) -> FloatArray:
    """``np.nanmedian(a, axis)`` (NaN where a slice is all NaN, without a warning)."""
    a = np.asarray(a, dtype=float)
    if a.shape[axis] == 0:
        return np.full(np.delete(a.shape, axis), np.nan)
    # numpy's sums start from +0.0: a median of -0.0s is +0.0 there
    return _middle(np.sort(np.moveaxis(a, axis, -1), axis=-1)) + 0.0


def trailing_median(x: FloatArray, n: int) -> FloatArray:
    """Median of the last ``n`` hours at each hour (NaN-skipping; NaN until ``n`` hours
    seen) of a series, or of each row of an array of series at once."""
    x = np.asarray(x, dtype=float)
    out = np.full(x.shape, np.nan)
    if x.shape[-1] >= n:
        rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
        _trailing(rows, n, out.reshape(-1, x.shape[-1]))
    return out


@numba.njit(cache=True)
def _trailing(x: FloatArray, n: int, out: FloatArray) -> None:
    """The window's values kept sorted as it slides (one insertion and one removal an
    hour instead of sorting every window); the middle taken as in :func:`_middle`. Equal
    values are interchangeable, so the medians are the same values (a zero's sign aside,
    which no caller reads: they compare magnitudes or divide by the median's scale)."""
    window = np.empty(n + 1)
    for r in range(x.shape[0]):
        k = 0  # values in the window
        for t in range(x.shape[1]):
            v = x[r, t]
            if not np.isnan(v):
                p = k
                while p > 0 and window[p - 1] > v:
                    window[p] = window[p - 1]
                    p -= 1
                window[p] = v
                k += 1
            if t >= n and not np.isnan(x[r, t - n]):  # the hour leaving the window
                p = 0
                while window[p] != x[r, t - n]:
                    p += 1
                for q in range(p, k - 1):
                    window[q] = window[q + 1]
                k -= 1
            if t >= n - 1 and k > 0:
                out[r, t] = (window[(k - 1) // 2] + window[k // 2]) / 2


def median(x: FloatArray) -> float:
    """``np.median`` of a 1-D array without NaN (one partition, none of its checks)."""
    n = x.size
    if n == 0:
        return float("nan")
    h = n // 2
    if n % 2:
        return float(np.partition(x, h)[h]) + 0.0
    part = np.partition(x, (h - 1, h))
    return float((part[h - 1] + part[h]) / 2) + 0.0


@numba.njit(cache=True)
def median_of(x: FloatArray) -> float:
    """:func:`median` in compiled code (the middle value(s) by one partition)."""
    h = x.size // 2
    part = np.partition(x, h)
    if x.size % 2:
        return part[h] + 0.0
    return (part[:h].max() + part[h]) / 2 + 0.0
