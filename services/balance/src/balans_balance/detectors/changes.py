"""The balance meter's reading as a baseline plus a few changes, each with its own shape.

Several faults of one group often overlap (a leak during a tapping-in during a drift of
the balance meter). Rather than classify the whole excursion of the imbalance, the
reading is modelled as ::

    balance(t) = baseline(t) + Σ_j c_j · shape_j(t)

where the baseline is a least-squares combination of regressors (1, the subscribers'
use, the supply temperature) and each change ``j`` acts on ``[start, end)`` only, with
a shape that tells its cause:

- ``step``: a constant (a leak: constant coolant volume, weighted by heat per m³ where
  the group balances volume);
- ``use``: a share of the subscribers' use (a consumer tapped in before the meters);
- ``ramp``: the balance meter's own reading times a ramp from 0 at ``start`` to 1 at
  ``end`` (a drifting register; one that drifts to the end of the data keeps ramping);
- ``scale``: the balance meter's own reading (a register off by a constant factor: a
  drift that stepped or settled; for the meters also a draw of a share of the flow).

Changes are found greedily (matching pursuit): every candidate window of every shape is
scored by the exact drop of the residual sum of squares it would bring given the current
model (cumulative sums make all windows of a grid one vectorised computation), the best
is refined to the hour, and the model refitted; then each change is searched again with
the others fixed (back-fitting), which undoes an early greedy choice that a later change
made wrong. A change is kept while its drop is large against the residual's noise, whose
variance is measured on 24-hour sums (hour-to-hour noise is correlated: weather).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SHAPES = ("step", "use", "ramp", "scale")
# shapes that may stand for one another on the same window (the swap pass tries them)
LEVEL_SHAPES = ("step", "use", "scale")
# ``grow``: a constant that grows from 0 (a leak whose crack widens); not searched, only
# measured against a ramp on the ramp's window: where the flow hardly varies the two are
# the same (the reading of a constant flow drifting, or a loss growing)
GROWING_SHAPES = ("ramp", "grow")


@dataclass(frozen=True)
class ChangeSettings:
    # the fit runs on sums over blocks of this many hours: a register's quantisation
    # (a pulse now or the next hour) cancels in them, and would otherwise flatten the
    # baseline's slope (noise in a regressor) into a slow wave in the residual
    block_hours: int = 3
    min_blocks: int = 4  # a change lasts at least this long
    # a drift lasts at least this long: shorter ramps only fit the edges of large steps
    min_ramp_blocks: int = 8
    # a share of the use must drop the residual this much more than a constant over the
    # same window to be preferred: the constant is the simpler explanation, and the two
    # are alike when the use hardly varies
    step_preference: float = 0.005
    min_start_blocks: int = 40  # history needed before a change can start
    grid_blocks: int = 1  # candidate windows are searched on this grid, then refined
    max_changes: int = 6
    min_z2: float = 300.0  # drop of the residual SS over the noise variance of a block
    max_collinearity: float = 0.9  # share of a candidate the current model already explains
    backfit_rounds: int = 2


@dataclass(frozen=True)
class Window:
    shape: str
    start: int
    end: int  # exclusive


@dataclass(frozen=True)
class Change:
    shape: str
    start: int
    end: int  # exclusive
    coef: float  # step: per hour; use: share; ramp: the reading's error reached at ``end``
    z2: float  # drop of the residual sum of squares over the noise variance of a block
    contribution: FloatArray  # coef x shape, hourly, zero outside the window
    # the other level shapes on the same window: how much worse each fits (rise of the
    # residual SS over the noise variance of a block); near 0, the data cannot tell
    alternatives: dict[str, float] = field(default_factory=dict)


def window_shape(w: Window, weights: dict[str, FloatArray]) -> FloatArray:
    """The change's hourly shape (unit coefficient)."""
    weight = weights[w.shape]
    out = np.zeros(weight.size)
    hours = np.arange(w.start, w.end)
    if w.shape in GROWING_SHAPES:
        out[w.start : w.end] = (hours - w.start + 1) * weight[w.start : w.end]
        out /= max(w.end - w.start, 1)
    else:
        out[w.start : w.end] = weight[w.start : w.end]
    return out


def _design(base: FloatArray, windows: list[Window], weights: dict[str, FloatArray]) -> FloatArray:
    return np.column_stack([base] + [window_shape(w, weights) for w in windows])


def least_squares(y: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """(residual, coefficients) of the least-squares fit of y on the columns of x."""
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    return np.asarray(y - x @ coef), np.asarray(coef)


def block_noise_variance(residual: FloatArray, per_day: int) -> float:
    """Robust variance of the residual's daily sums, per block: the noise a block
    carries once its correlation with the day's other blocks (weather) is counted."""
    steps = np.diff(_blocks(residual, per_day))
    mad = float(np.median(np.abs(steps - np.median(steps))))
    return max((1.4826 * mad) ** 2 / 2 / per_day, 1e-12)


def _cum(x: FloatArray) -> FloatArray:
    """Cumulative sums along the last axis with a leading zero."""
    zero = np.zeros((*x.shape[:-1], 1))
    return np.concatenate([zero, np.cumsum(x, axis=-1)], axis=-1)


def _min_blocks(shape: str, cfg: ChangeSettings) -> int:
    return cfg.min_ramp_blocks if shape == "ramp" else cfg.min_blocks


def _window_gains(
    shape: str, weight: FloatArray, r: FloatArray, x: FloatArray, m: FloatArray,
    points: npt.NDArray[np.int_], cfg: ChangeSettings,
) -> FloatArray:  # fmt: skip
    """[start point, end point] -> drop of the residual SS if that window were added.

    With the current design ``x`` (residual ``r`` orthogonal to it, ``m`` = (xᵀx)⁻¹)
    the drop for a new column ``a`` is (a·r)² / (a·a − vᵀ m v), v = xᵀa. Computed only
    for the windows long and late enough to be valid (about a third of the grid).
    """
    s_at, e_at = _valid_pairs(
        points.astype(np.int64).tobytes(), _min_blocks(shape, cfg), cfg.min_start_blocks
    )
    out = np.zeros((points.size - 1, points.size))
    if not s_at.size:
        return out
    s, e = points[s_at], points[e_at]

    def seg(c: FloatArray) -> FloatArray:
        return np.asarray(c[..., e] - c[..., s])

    if shape == "ramp":  # a = (t + 1 - start) * weight on the window
        t1 = np.arange(weight.size, dtype=np.float64) + 1
        ar = seg(_cum(t1 * weight * r)) - s * seg(_cum(weight * r))
        aa = (
            seg(_cum(t1 * t1 * weight * weight))
            - 2 * s * seg(_cum(t1 * weight * weight))
            + s * s * seg(_cum(weight * weight))
        )
        v = seg(_cum(t1 * weight * x.T)) - s[None] * seg(_cum(weight * x.T))
    else:
        ar = seg(_cum(weight * r))
        aa = seg(_cum(weight * weight))
        v = seg(_cum(weight * x.T))
    den = aa - (v * (m @ v)).sum(axis=0)
    valid = den > (1 - cfg.max_collinearity) * np.maximum(aa, 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[s_at, e_at] = np.where(valid, ar * ar / np.where(valid, den, 1.0), 0.0)
    return out


@functools.lru_cache(maxsize=64)
def _valid_pairs(
    points: bytes, min_blocks: int, min_start: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """The (start, end) positions in the grid ``points`` (int64 bytes) of the windows at
    least ``min_blocks`` long starting at ``min_start`` or later."""
    at = np.frombuffer(points, dtype=np.int64)
    s, e = at[:-1, None], at[None, :]
    rows, cols = np.nonzero((e - s >= min_blocks) & (s >= min_start))
    return rows, cols


def _best_window(
    y: FloatArray, base: FloatArray, fixed: list[Window], weights: dict[str, FloatArray],
    cfg: ChangeSettings,
) -> tuple[Window, float] | None:  # fmt: skip
    """The window (any shape) whose addition to ``fixed`` drops the residual SS most,
    found on the grid and refined to the hour; None when no window is valid."""
    x = _design(base, fixed, weights)
    r, _ = least_squares(y, x)
    m = np.asarray(np.linalg.pinv(x.T @ x), dtype=np.float64)
    n = y.size
    points = np.unique(np.concatenate([np.arange(0, n, cfg.grid_blocks), [n]]))
    best: tuple[Window, float] | None = None
    for shape in (s for s in SHAPES if s in weights):
        gains = _window_gains(shape, weights[shape], r, x, m, points, cfg)
        i, j = np.unravel_index(int(np.argmax(gains)), gains.shape)
        if gains[i, j] > 0 and (best is None or gains[i, j] > best[1]):
            best = Window(shape, int(points[i]), int(points[j])), float(gains[i, j])
    if best is None:
        return None
    coarse = best[0]
    sse = float(r @ r)
    if coarse.shape == "use":
        step = Window("step", coarse.start, coarse.end)
        step_gain = sse - _sse(y, base, [*fixed, step], weights)
        if best[1] < (1 + cfg.step_preference) * step_gain:
            best = step, step_gain
            coarse = step
    g = cfg.grid_blocks
    for start in range(max(coarse.start - g, cfg.min_start_blocks), coarse.start + g + 1):
        shortest = start + _min_blocks(coarse.shape, cfg)
        for end in range(max(coarse.end - g, shortest), min(coarse.end + g, n) + 1):
            w = Window(coarse.shape, start, end)
            rr, _ = least_squares(y, _design(base, [*fixed, w], weights))
            if sse - float(rr @ rr) > best[1]:
                best = w, sse - float(rr @ rr)
    return best


def _sse(
    y: FloatArray, base: FloatArray, windows: list[Window], weights: dict[str, FloatArray]
) -> float:
    r, _ = least_squares(y, _design(base, windows, weights))
    return float(r @ r)


def _backfit(
    y: FloatArray, base: FloatArray, windows: list[Window], weights: dict[str, FloatArray],
    cfg: ChangeSettings,
) -> list[Window]:  # fmt: skip
    """Search each change again with the others fixed; keep what lowers the residual."""
    windows = list(windows)
    for _ in range(cfg.backfit_rounds):
        changed = False
        for j in range(len(windows)):
            others = windows[:j] + windows[j + 1 :]
            found = _best_window(y, base, others, weights, cfg)
            if found is None or found[0] == windows[j]:
                continue
            candidate = [*others[:j], found[0], *others[j:]]
            if _sse(y, base, candidate, weights) < _sse(y, base, windows, weights) - 1e-9:
                windows, changed = candidate, True
        if not changed:
            break
    return windows


def _blocks(a: FloatArray, size: int) -> FloatArray:
    """Sums over consecutive blocks of ``size`` hours along the first axis (the first
    hours that do not fill a block are dropped)."""
    n = a.shape[0] // size
    return np.asarray(a[a.shape[0] - n * size :].reshape(n, size, *a.shape[1:]).sum(axis=1))


def fit_changes(
    y: FloatArray, base: FloatArray, weights: dict[str, FloatArray],
    cfg: ChangeSettings | None = None,
) -> list[Change]:  # fmt: skip
    """The changes of hourly ``y`` beyond ``base`` [hour, regressor]: ``weights`` holds
    the hourly weight of each shape (``step``, ``use``, ``ramp``). Hours to ignore must
    be zero in ``y``, ``base`` and every weight. Windows come back in hours."""
    cfg = cfg or ChangeSettings()
    size = cfg.block_hours
    offset = y.size % size
    yb, bb = _blocks(y, size), _blocks(base, size)
    wb = {k: _blocks(v, size) for k, v in weights.items()}
    windows: list[Window] = []
    for _ in range(cfg.max_changes):
        found = _best_window(yb, bb, windows, wb, cfg)
        if found is None:
            break
        trial = _backfit(yb, bb, [*windows, found[0]], wb, cfg)
        r, _ = least_squares(yb, _design(bb, trial, wb))
        if _significance(yb, bb, trial, wb, r, size)[-1] < cfg.min_z2:
            break
        windows = trial
    windows = _swap_and_prune(yb, bb, windows, wb, cfg)
    if not windows:
        return []
    r, coef = least_squares(yb, _design(bb, windows, wb))
    z2 = _significance(yb, bb, windows, wb, r, size)
    noise = block_noise_variance(r, 24 // size)
    sse = float(r @ r)
    k = base.shape[1]
    out = []
    for j, (w, c, z) in enumerate(zip(windows, coef[k:], z2, strict=True)):
        hourly = Window(w.shape, offset + w.start * size, offset + w.end * size)
        family = next((f for f in (LEVEL_SHAPES, GROWING_SHAPES) if w.shape in f), ())
        alternatives = {
            alt: (_sse(yb, bb, [*windows[:j], Window(alt, w.start, w.end), *windows[j + 1 :]], wb)
                  - sse) / noise
            for alt in family
            if alt != w.shape and alt in wb
        }  # fmt: skip
        out.append(
            Change(
                w.shape,
                hourly.start,
                hourly.end,
                float(c),
                z,
                c * window_shape(hourly, weights),
                alternatives,
            )
        )
    return out


def _swap_and_prune(
    y: FloatArray, base: FloatArray, windows: list[Window], weights: dict[str, FloatArray],
    cfg: ChangeSettings,
) -> list[Window]:  # fmt: skip
    """Moves the one-at-a-time search cannot make: a step read as a share of the use (or
    the reverse) with small corrections around it is tried with the other shape; two
    overlapping changes are searched again together; a change left insignificant by
    the others is dropped and the rest refitted."""
    windows = list(windows)
    for _ in range(2 * cfg.max_changes):
        sse = _sse(y, base, windows, weights)
        best: tuple[float, list[Window]] | None = None
        for j, w in enumerate(windows):
            if w.shape not in LEVEL_SHAPES:
                continue
            gain = _sse(y, base, windows[:j] + windows[j + 1 :], weights) - sse
            for alt in (a for a in LEVEL_SHAPES if a != w.shape and a in weights):
                trial = [*windows[:j], Window(alt, w.start, w.end), *windows[j + 1 :]]
                trial_sse = _sse(y, base, trial, weights)
                # the constant keeps the change unless another shape clearly explains
                # it better, and takes it over when it explains it nearly as well
                margin = (
                    cfg.step_preference
                    * gain
                    * (1 if w.shape == "step" else -1 if alt == "step" else 0)
                )
                if trial_sse < sse - margin and (best is None or trial_sse < best[0]):
                    best = trial_sse, trial
        if best is not None:
            windows = best[1]
            continue
        regrouped = _regroup_overlapping(y, base, windows, weights, cfg)
        if regrouped is not None:
            windows = regrouped
            continue
        r, _ = least_squares(y, _design(base, windows, weights))
        z2 = _significance(y, base, windows, weights, r, cfg.block_hours)
        weakest = int(np.argmin(z2)) if z2 else -1
        if weakest < 0 or z2[weakest] >= cfg.min_z2:
            break
        windows.pop(weakest)
    return windows


def _regroup_overlapping(
    y: FloatArray, base: FloatArray, windows: list[Window], weights: dict[str, FloatArray],
    cfg: ChangeSettings,
) -> list[Window] | None:  # fmt: skip
    """Two overlapping changes removed and two searched again (greedily) with the others
    fixed: a long change with a negative correction at one end (the greedy search's
    reading of a shorter one) becomes the shorter one. The best improvement, or None."""
    sse = _sse(y, base, windows, weights)
    best: tuple[float, list[Window]] | None = None
    for i, a in enumerate(windows):
        for j in range(i + 1, len(windows)):
            b = windows[j]
            if min(a.end, b.end) <= max(a.start, b.start):
                continue
            trial = [w for k, w in enumerate(windows) if k not in (i, j)]
            for _ in range(2):
                found = _best_window(y, base, trial, weights, cfg)
                if found is None:
                    break
                trial.append(found[0])
            trial_sse = _sse(y, base, trial, weights)
            if trial_sse < sse * (1 - 1e-6) and (best is None or trial_sse < best[0]):
                best = trial_sse, trial
    return None if best is None else best[1]


def _significance(
    y: FloatArray, base: FloatArray, windows: list[Window], weights: dict[str, FloatArray],
    residual: FloatArray, block_hours: int,
) -> list[float]:  # fmt: skip
    """Per change: the rise of the residual SS without it, over the noise of a block."""
    sse = float(residual @ residual)
    noise = block_noise_variance(residual, 24 // block_hours)
    return [
        (_sse(y, base, windows[:j] + windows[j + 1 :], weights) - sse) / noise
        for j in range(len(windows))
    ]
