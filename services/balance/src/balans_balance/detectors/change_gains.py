"""The window gains of the change fit (:mod:`balans_balance.detectors.changes`): numba
loops around one matrix product.

For every candidate window ``a`` of a shape, the drop of the residual sum of squares its
addition to the current design ``x`` would bring is (a·r)² / (a·a − vᵀ m v), v = xᵀa,
m = (xᵀx)⁻¹. Each of a·r, a·a and v is a difference of two cumulative sums; numpy did
the gathers and every elementwise step with a temporary array over all windows of the
grid (most of a balance event's time). The loops here do the same arithmetic in the
same order, and ``m @ v`` stays numpy's (the same BLAS call), so every gain is the same
to the last bit: the greedy search breaks near-ties between windows (where hours without
data make windows almost equivalent) exactly as before.
"""

from __future__ import annotations

import numba
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@numba.njit(cache=True)
def _segments(points: IntArray, s_at: IntArray, e_at: IntArray, cums: FloatArray) -> FloatArray:
    """[row, window]: ``cums[row, end] − cums[row, start]`` of each window."""
    out = np.empty((cums.shape[0], s_at.size))
    for row in range(cums.shape[0]):
        c = cums[row]
        for p in range(s_at.size):
            out[row, p] = c[points[e_at[p]]] - c[points[s_at[p]]]
    return out


@numba.njit(cache=True)
def _scatter_gains(
    s_at: IntArray,
    e_at: IntArray,
    ar: FloatArray,
    aa: FloatArray,
    v: FloatArray,
    mv: FloatArray,
    min_den_share: float,
    out: FloatArray,
) -> None:
    """out[start, end] = ar² / (aa − Σ v·mv) where that denominator is above
    ``min_den_share`` of aa (the design does not already explain the window), else 0.
    The sum runs over the rows in order, as numpy's ``(v * mv).sum(axis=0)``."""
    for p in range(s_at.size):
        quad = v[0, p] * mv[0, p]
        for row in range(1, v.shape[0]):
            quad = quad + v[row, p] * mv[row, p]
        den = aa[p] - quad
        if den > min_den_share * max(aa[p], 1e-12):
            out[s_at[p], e_at[p]] = ar[p] * ar[p] / den
        else:
            out[s_at[p], e_at[p]] = 0.0


def window_gains(
    points: IntArray,
    s_at: IntArray,
    e_at: IntArray,
    start_weighted: bool,
    cums: FloatArray,
    m: FloatArray,
    min_den_share: float,
) -> FloatArray:
    """[start point, end point] -> gain of each window (s_at, e_at) of the grid.

    ``cums`` rows (cumulative sums with a leading zero): for a level window (step, use,
    scale) weight·r, weight², then weight·x by column. For a ramp, a = (t + 1 − start)
    x weight on the window (``start_weighted``): (t+1)·weight·r, weight·r,
    (t+1)²·weight², (t+1)·weight², weight², then (t+1)·weight·x and weight·x by column."""
    seg = _segments(points, s_at, e_at, np.ascontiguousarray(cums))
    if start_weighted:
        s = points[s_at]
        k = (seg.shape[0] - 5) // 2
        ar = seg[0] - s * seg[1]
        aa = seg[2] - 2 * s * seg[3] + s * s * seg[4]
        v = seg[5 : 5 + k] - s[None] * seg[5 + k :]
    else:
        ar, aa, v = seg[0], seg[1], seg[2:]
    out = np.zeros((points.size - 1, points.size))
    _scatter_gains(s_at, e_at, ar, aa, v, m @ v, min_den_share, out)
    return out
