"""Each member meter's daily use predicted from its peers, and where it left the prediction.

A member's day is predicted as ``a + b·index``: ``index`` is the group's robust daily
level (the median over members of each member's use relative to its own median), so
the peers carry the weather, the weekday and the heating curve, and a few faulty or
absent members do not move it. ``a`` and ``b`` are fitted over the ``ref_days`` before
a candidate change day; what is left is the member's own noise (about 2 % a day for a
flat, a tenth of that for a riser's flow).

A change is found by a generalised likelihood ratio over every change day ``c`` and
every later day ``t``: a *step* (the residuals' sum) and a *ramp* (the residuals
weighted by the days since ``c``), each divided by its standard deviation under "no
change". That deviation includes the error of the fitted prediction itself, which is
common to all the days after ``c`` (sums over many days would otherwise read a
slightly-off fit as a change), and the noise scale is shrunk towards the group's (a
scale estimated from two weeks alone is too often too small).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from balans_balance.medians import nanmedian

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PeerSettings:
    ref_days: int = 14
    min_ref_days: int = 10
    rel_floor: float = 0.002  # of the member's level: no scale is ever narrower
    prior_weight: float = 12.0  # pseudo-days of the group's scale in each member's


@dataclass(frozen=True)
class PeerModel:
    """z[i, c, d]: member i's residual on day d (>= c) under the fit over the days
    before c, in noise units; ``expected`` the prediction in the member's unit; step and
    ramp hold, for every (i, t), the largest |GLR| over c and the c that gave it."""

    z: FloatArray
    expected: FloatArray
    step: FloatArray
    step_from: npt.NDArray[np.int_]
    ramp: FloatArray
    ramp_from: npt.NDArray[np.int_]


def block_sums(hourly: FloatArray, size: int) -> tuple[FloatArray, int]:
    """Sums over the last whole blocks of ``size`` hours (the last axis; a block with a
    missing hour is NaN) and the hour index the first block starts at."""
    n = hourly.shape[-1]
    blocks = n // size
    first = n - blocks * size
    return hourly[..., first:].reshape(*hourly.shape[:-1], blocks, size).sum(axis=-1), first


def daily_sums(hourly: FloatArray) -> tuple[FloatArray, int]:
    """[member, day] sums of the last whole days and the hour the first day starts at."""
    return block_sums(hourly, 24)


def group_index(daily: FloatArray, unsound: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """The group's daily level: median over members of use relative to its own median.
    ``unsound`` [member, day]: days whose register is known not to measure the use,
    left out of the median (not of the member's own level) where any member is left."""
    # members or days without any reading: NaN, as meant
    level = nanmedian(np.where(daily > 0, daily, np.nan), axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(level > 0, daily / level, np.nan)
    if unsound is not None:
        sound = np.where(unsound, np.nan, relative)
        relative = np.where(np.isfinite(sound).any(axis=0), sound, relative)
    return np.asarray(np.nan_to_num(nanmedian(relative, axis=0), nan=1.0))


def _fit(
    y: FloatArray, x: FloatArray, cfg: PeerSettings, quantum: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per member least squares y = a + b·x over the reference days (NaN days left out):
    a, b, the noise scale, the number of days used, and the mean reference x. ``y`` and
    ``x`` are [change day, member, reference day]: every change day's fit at once (sums
    along the last axis are added as they are for one change day's [member, day])."""
    w = (~np.isnan(y)).astype(np.float64)
    y0 = np.nan_to_num(y)
    n = w.sum(axis=-1)
    nn = np.maximum(n, 1)
    xm = (w * x).sum(axis=-1) / nn
    ym = (w * y0).sum(axis=-1) / nn
    dx = x - xm[..., None]
    sxx = (w * dx**2).sum(axis=-1)
    b = np.where(
        sxx > 1e-12, (w * dx * (y0 - ym[..., None])).sum(axis=-1) / np.maximum(sxx, 1e-12), 0
    )
    a = ym - b * xm
    resid = w * (y0 - a[..., None] - b[..., None] * x)
    dof = np.maximum(n - 2, 1)
    own = np.sqrt((resid**2).sum(axis=-1) / dof)
    level = np.maximum(np.abs(ym), 1e-12)
    relative = own / level
    ok = n >= cfg.min_ref_days
    # the group's scale of each change day, its median member's (in Python floats)
    prior = np.array(
        [
            [cfg.prior_weight * float(np.median(r[k])) ** 2 if k.any() else 0.0]
            for r, k in zip(relative, ok, strict=True)
        ]
    )
    shrunk = np.sqrt((dof * relative**2 + prior) / (dof + cfg.prior_weight))
    floor = np.maximum(cfg.rel_floor, quantum / np.sqrt(6) / level)
    sigma = np.where(ok, np.maximum(shrunk, floor) * level, np.nan)
    return a, b, sigma, n, xm


def peer_model(
    daily: FloatArray,
    quantum: FloatArray,
    cfg: PeerSettings | None = None,
    unsound: npt.NDArray[np.bool_] | None = None,
) -> PeerModel:
    """The residuals and the step / ramp GLR of every member (see the module doc);
    ``unsound`` [member, day] the days left out of the group's level (:func:`group_index`)."""
    cfg = cfg or PeerSettings()
    m, nd = daily.shape
    x = group_index(daily, unsound)
    z = np.full((m, nd, nd), np.nan)
    expected = np.full((m, nd, nd), np.nan)
    step = np.zeros((m, nd))
    ramp = np.zeros((m, nd))
    step_from = np.zeros((m, nd), dtype=np.int_)
    ramp_from = np.zeros((m, nd), dtype=np.int_)
    if nd <= cfg.ref_days:
        return PeerModel(z, expected, step, step_from, ramp, ramp_from)
    changes = nd - cfg.ref_days  # change days c = ref_days.. nd - 1, each fitted on the days before
    xs = sliding_window_view(x, cfg.ref_days)[:changes]  # [change day, reference day]
    a, b, sigma, n, xm = _fit(
        sliding_window_view(daily, cfg.ref_days, axis=1)[:, :changes].transpose(1, 0, 2),
        np.broadcast_to(xs[:, None, :], (changes, m, cfg.ref_days)),
        cfg,
        quantum,
    )
    for j, c in enumerate(range(cfg.ref_days, nd)):
        xr = xs[j]
        sxx = float(((xr - xr.mean()) ** 2).sum())
        _glr(daily, x, c, a[j], b[j], sigma[j], n[j], xm[j], sxx, z, expected, step, step_from,
             ramp, ramp_from)  # fmt: skip
    return PeerModel(z, expected, step, step_from, ramp, ramp_from)


@numba.njit(cache=True, error_model="numpy")
def _glr(
    daily: FloatArray,
    x: FloatArray,
    c: int,
    a: FloatArray,
    b: FloatArray,
    sigma: FloatArray,
    n: FloatArray,
    xm: FloatArray,
    sxx: float,
    z: FloatArray,
    expected: FloatArray,
    step: FloatArray,
    step_from: npt.NDArray[np.int_],
    ramp: FloatArray,
    ramp_from: npt.NDArray[np.int_],
) -> None:
    """The residuals after change day ``c`` under the fit over the days before it, and
    the step and ramp GLR of every later day, kept where larger than the best so far.
    Compiled (it ran once per change day in numpy, 30 small operations each); every
    figure is the same expression, the sums added day after day as ``cumsum`` adds them.

    Var(Σ w·resid) = Σ w² + (Σ w)²/n + (Σ w·dx)²/Sxx: the noise of the days plus the
    error of the fitted intercept and slope, common to all of them."""
    nd = daily.shape[1]
    for i in range(daily.shape[0]):
        for ramped in (False, True):
            num = sw2 = sw = swdx = 0.0
            for d in range(c, nd):
                pred = a[i] + b[i] * x[d]
                resid = (daily[i, d] - pred) / sigma[i]
                if not ramped:
                    expected[i, c, d] = pred
                    z[i, c, d] = resid
                known = not np.isnan(resid)
                weight = (d - c + 1) - 0.5 if ramped else 1.0
                wk = weight * (1.0 if known else 0.0)
                num += wk * (resid if known else 0.0)
                sw2 += wk * wk
                sw += wk
                swdx += wk * (x[d] - xm[i])
                var = sw2 + sw * sw / max(n[i], 1.0)
                if sxx > 1e-12:
                    var = var + swdx * swdx / sxx
                glr = num / np.sqrt(max(var, 1e-12)) if var > 0 else 0.0
                best, best_from = (ramp, ramp_from) if ramped else (step, step_from)
                if abs(glr) > abs(best[i, d]):
                    best[i, d] = glr
                    best_from[i, d] = c
