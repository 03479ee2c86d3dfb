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

import numpy as np
import numpy.typing as npt

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


def group_index(daily: FloatArray) -> FloatArray:
    """The group's daily level: median over members of use relative to its own median."""
    # members or days without any reading: NaN, as meant
    level = nanmedian(np.where(daily > 0, daily, np.nan), axis=1)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = np.where(level > 0, daily / level, np.nan)
    return np.asarray(np.nan_to_num(nanmedian(relative, axis=0), nan=1.0))


def _fit(
    y: FloatArray, x: FloatArray, cfg: PeerSettings, quantum: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Per member least squares y = a + b·x over the reference days (NaN days left out):
    a, b, the noise scale, the number of days used, and the mean reference x."""
    w = (~np.isnan(y)).astype(np.float64)
    y0 = np.nan_to_num(y)
    n = w.sum(axis=1)
    nn = np.maximum(n, 1)
    xm = (w * x).sum(axis=1) / nn
    ym = (w * y0).sum(axis=1) / nn
    dx = x - xm[:, None]
    sxx = (w * dx**2).sum(axis=1)
    b = np.where(sxx > 1e-12, (w * dx * (y0 - ym[:, None])).sum(axis=1) / np.maximum(sxx, 1e-12), 0)
    a = ym - b * xm
    resid = w * (y0 - a[:, None] - b[:, None] * x)
    dof = np.maximum(n - 2, 1)
    own = np.sqrt((resid**2).sum(axis=1) / dof)
    level = np.maximum(np.abs(ym), 1e-12)
    relative = own / level
    ok = n >= cfg.min_ref_days
    pooled = float(np.median(relative[ok])) if ok.any() else 0.0
    shrunk = np.sqrt((dof * relative**2 + cfg.prior_weight * pooled**2) / (dof + cfg.prior_weight))
    floor = np.maximum(cfg.rel_floor, quantum / np.sqrt(6) / level)
    sigma = np.where(ok, np.maximum(shrunk, floor) * level, np.nan)
    return a, b, sigma, n, xm


def peer_model(
    daily: FloatArray, quantum: FloatArray, cfg: PeerSettings | None = None
) -> PeerModel:
    """The residuals and the step / ramp GLR of every member (see the module doc)."""
    cfg = cfg or PeerSettings()
    m, nd = daily.shape
    x = group_index(daily)
    z = np.full((m, nd, nd), np.nan)
    expected = np.full((m, nd, nd), np.nan)
    step = np.zeros((m, nd))
    ramp = np.zeros((m, nd))
    step_from = np.zeros((m, nd), dtype=np.int_)
    ramp_from = np.zeros((m, nd), dtype=np.int_)
    for c in range(cfg.ref_days, nd):
        ref = slice(c - cfg.ref_days, c)
        a, b, sigma, n, xm = _fit(
            daily[:, ref], np.broadcast_to(x[ref], (m, cfg.ref_days)), cfg, quantum
        )
        xr = x[ref]
        sxx = float(((xr - xr.mean()) ** 2).sum())
        pred = a[:, None] + b[:, None] * x[None, c:]
        expected[:, c, c:] = pred
        resid = (daily[:, c:] - pred) / sigma[:, None]
        z[:, c, c:] = resid
        known = ~np.isnan(resid)
        r0 = np.where(known, resid, 0.0)
        k = np.arange(1, nd - c + 1, dtype=np.float64)
        dx = x[c:] - xm[:, None]  # [m, days]
        for weights, best, best_from in (
            (np.ones(nd - c), step, step_from),
            (k - 0.5, ramp, ramp_from),
        ):
            wk = weights[None, :] * known
            num = np.cumsum(wk * r0, axis=1)
            # Var(Σ w·resid) = Σ w² + (Σ w)²/n + (Σ w·dx)²/Sxx: the noise of the days
            # plus the error of the fitted intercept and slope, common to all of them
            var = (
                np.cumsum(wk**2, axis=1)
                + np.cumsum(wk, axis=1) ** 2 / np.maximum(n, 1)[:, None]
                + (np.cumsum(wk * dx, axis=1) ** 2 / sxx if sxx > 1e-12 else 0.0)
            )
            glr = np.where(var > 0, num / np.sqrt(np.maximum(var, 1e-12)), 0.0)
            better = np.abs(glr) > np.abs(best[:, c:])
            best[:, c:] = np.where(better, glr, best[:, c:])
            best_from[:, c:] = np.where(better, c, best_from[:, c:])
    return PeerModel(z, expected, step, step_from, ramp, ramp_from)
