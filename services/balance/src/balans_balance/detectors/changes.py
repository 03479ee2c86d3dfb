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
variance is measured on 24-hour sums (hour-to-hour noise is correlated: weather); where
the newest is not, a second one is tried with it, and both kept where every change then
is (faults that overlap hide one another in that noise).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from balans_balance.detectors.change_gains import window_gains

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


Windows = tuple[Window, ...]


class _Fit:
    """One fit's data (block sums) and what it computed, by the set of windows asked
    about: the greedy search, back-fitting, swaps and regrouping ask about the same
    designs again and again (every least-squares fit and every window search is a pure
    function of the windows, so each is computed once per fit, in the same order of
    columns, hence with the same result)."""

    def __init__(
        self, y: FloatArray, base: FloatArray, weights: dict[str, FloatArray], cfg: ChangeSettings
    ) -> None:
        self.y, self.base, self.weights, self.cfg = y, base, weights, cfg
        n = y.size
        self.points = np.unique(np.concatenate([np.arange(0, n, cfg.grid_blocks), [n]]))
        self._columns: dict[Window, FloatArray] = {}
        self._fits: dict[Windows, tuple[FloatArray, FloatArray]] = {}
        self._best: dict[Windows, tuple[Window, float] | None] = {}
        # per shape, cumulative sums of weight x column (and (t + 1) x weight x column
        # for ramps) of the base and of each window's column: the rows of _cum(w * x.T)
        self._cums: dict[tuple[str, bool, Window | None], FloatArray] = {}
        self._t1 = np.arange(n, dtype=np.float64) + 1

    def column(self, w: Window) -> FloatArray:
        if w not in self._columns:
            self._columns[w] = window_shape(w, self.weights)
        return self._columns[w]

    def design(self, windows: Windows) -> FloatArray:
        return np.column_stack([self.base] + [self.column(w) for w in windows])

    def fit(self, windows: Windows) -> tuple[FloatArray, FloatArray]:
        """(residual, coefficients) of the base and these windows."""
        if windows not in self._fits:
            self._fits[windows] = least_squares(self.y, self.design(windows))
        return self._fits[windows]

    def sse(self, windows: Windows) -> float:
        r = self.fit(windows)[0]
        return float(r @ r)

    def _cum_x(self, shape: str, timed: bool, fixed: Windows) -> FloatArray:
        """_cum(weight x x.T) (timed: (t + 1) x weight x x.T) of the design of ``fixed``,
        assembled from cached rows (cumulative sums run along each row alone)."""
        weight = self.weights[shape]
        scale = self._t1 * weight if timed else weight
        rows = []
        for w in (None, *fixed):
            key = (shape, timed, w)
            if key not in self._cums:
                col = self.base.T if w is None else self.column(w)[None, :]
                self._cums[key] = _cum(scale * col)
            rows.append(self._cums[key])
        return np.concatenate(rows, axis=0)

    def gains(self, shape: str, r: FloatArray, fixed: Windows, m: FloatArray) -> FloatArray:
        """[start point, end point] -> drop of the residual SS if that window were added.

        With the current design ``x`` (residual ``r`` orthogonal to it, ``m`` =
        (xᵀx)⁻¹) the drop for a new column ``a`` is (a·r)² / (a·a − vᵀ m v), v = xᵀa.
        Computed only for the windows long and late enough to be valid (about a third
        of the grid)."""
        cfg, points, weight = self.cfg, self.points, self.weights[shape]
        s_at, e_at = _valid_pairs(
            points.astype(np.int64).tobytes(), _min_blocks(shape, cfg), cfg.min_start_blocks
        )
        if not s_at.size:
            return np.zeros((points.size - 1, points.size))
        weight_r = weight * r
        ww = weight * weight
        if shape == "ramp":  # a = (t + 1 - start) * weight on the window
            t1 = self._t1
            parts = [t1 * weight * r, weight_r, t1 * t1 * weight * weight, t1 * weight * weight, ww]
            cums = [_cum(np.array(parts)), self._cum_x(shape, True, fixed)]
        else:
            cums = [_cum(np.array([weight_r, ww]))]
        cums.append(self._cum_x(shape, False, fixed))
        return window_gains(
            points, s_at, e_at, shape == "ramp", np.concatenate(cums, axis=0), m,
            1 - cfg.max_collinearity,
        )  # fmt: skip

    def best_window(self, fixed: Windows) -> tuple[Window, float] | None:
        """The window (any shape) whose addition to ``fixed`` drops the residual SS most,
        found on the grid and refined to the hour; None when no window is valid."""
        if fixed not in self._best:
            self._best[fixed] = self._search(fixed)
        return self._best[fixed]

    def _search(self, fixed: Windows) -> tuple[Window, float] | None:
        cfg, points, n = self.cfg, self.points, self.y.size
        x = self.design(fixed)
        r = self.fit(fixed)[0]
        m = np.asarray(np.linalg.pinv(x.T @ x), dtype=np.float64)
        best: tuple[Window, float] | None = None
        for shape in (s for s in SHAPES if s in self.weights):
            gains = self.gains(shape, r, fixed, m)
            i, j = np.unravel_index(int(np.argmax(gains)), gains.shape)
            if gains[i, j] > 0 and (best is None or gains[i, j] > best[1]):
                best = Window(shape, int(points[i]), int(points[j])), float(gains[i, j])
        if best is None:
            return None
        coarse = best[0]
        sse = float(r @ r)
        if coarse.shape == "use":
            step = Window("step", coarse.start, coarse.end)
            step_gain = sse - self.sse((*fixed, step))
            if best[1] < (1 + cfg.step_preference) * step_gain:
                best = step, step_gain
                coarse = step
        g = cfg.grid_blocks
        for start in range(max(coarse.start - g, cfg.min_start_blocks), coarse.start + g + 1):
            shortest = start + _min_blocks(coarse.shape, cfg)
            for end in range(max(coarse.end - g, shortest), min(coarse.end + g, n) + 1):
                w = Window(coarse.shape, start, end)
                gain = sse - self.sse((*fixed, w))
                if gain > best[1]:
                    best = w, gain
        return best

    def backfit(self, windows: Windows) -> Windows:
        """Search each change again with the others fixed; keep what lowers the residual."""
        for _ in range(self.cfg.backfit_rounds):
            changed = False
            for j in range(len(windows)):
                others = windows[:j] + windows[j + 1 :]
                found = self.best_window(others)
                if found is None or found[0] == windows[j]:
                    continue
                candidate = (*others[:j], found[0], *others[j:])
                if self.sse(candidate) < self.sse(windows) - 1e-9:
                    windows, changed = candidate, True
            if not changed:
                break
        return windows

    def significance(self, windows: Windows) -> list[float]:
        """Per change: the rise of the residual SS without it, over the noise of a block."""
        residual = self.fit(windows)[0]
        sse = float(residual @ residual)
        noise = block_noise_variance(residual, 24 // self.cfg.block_hours)
        return [
            (self.sse(windows[:j] + windows[j + 1 :]) - sse) / noise for j in range(len(windows))
        ]

    def swap_and_prune(self, windows: Windows) -> Windows:
        """Moves the one-at-a-time search cannot make: a step read as a share of the use
        (or the reverse) with small corrections around it is tried with the other shape;
        two overlapping changes are searched again together; a change left insignificant
        by the others is dropped and the rest refitted."""
        cfg = self.cfg
        for _ in range(2 * cfg.max_changes):
            sse = self.sse(windows)
            best: tuple[float, Windows] | None = None
            for j, w in enumerate(windows):
                if w.shape not in LEVEL_SHAPES:
                    continue
                gain = self.sse(windows[:j] + windows[j + 1 :]) - sse
                for alt in (a for a in LEVEL_SHAPES if a != w.shape and a in self.weights):
                    trial = (*windows[:j], Window(alt, w.start, w.end), *windows[j + 1 :])
                    trial_sse = self.sse(trial)
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
            regrouped = self.regroup_overlapping(windows)
            if regrouped is not None:
                windows = regrouped
                continue
            z2 = self.significance(windows)
            weakest = int(np.argmin(z2)) if z2 else -1
            if weakest < 0 or z2[weakest] >= cfg.min_z2:
                break
            windows = windows[:weakest] + windows[weakest + 1 :]
        return windows

    def regroup_overlapping(self, windows: Windows) -> Windows | None:
        """Two overlapping changes removed and two searched again (greedily) with the
        others fixed: a long change with a negative correction at one end (the greedy
        search's reading of a shorter one) becomes the shorter one. The best
        improvement, or None."""
        sse = self.sse(windows)
        best: tuple[float, Windows] | None = None
        for i, a in enumerate(windows):
            for j in range(i + 1, len(windows)):
                b = windows[j]
                if min(a.end, b.end) <= max(a.start, b.start):
                    continue
                trial = tuple(w for k, w in enumerate(windows) if k not in (i, j))
                for _ in range(2):
                    found = self.best_window(trial)
                    if found is None:
                        break
                    trial = (*trial, found[0])
                trial_sse = self.sse(trial)
                if trial_sse < sse * (1 - 1e-6) and (best is None or trial_sse < best[0]):
                    best = trial_sse, trial
        return None if best is None else best[1]


def _blocks(a: FloatArray, size: int) -> FloatArray:
    """Sums over consecutive blocks of ``size`` hours along the first axis (the first
    hours that do not fill a block are dropped)."""
    n = a.shape[0] // size
    return np.asarray(a[a.shape[0] - n * size :].reshape(n, size, *a.shape[1:]).sum(axis=1))


def _greedy(fit: _Fit) -> Windows:
    """Changes added one at a time (each searched again with the others: back-fitting)
    while the newest is significant. Where it is not, one more is tried with it: faults
    that overlap hide one another, since the noise is measured on the residual, which
    still holds every change not yet modelled (four overlapping leaks raised the noise
    of a block 38-fold with one of them fitted, so no single one was significant, while
    with two fitted each stood at 30 times the threshold). Both are kept where every
    change of the model is then significant."""
    cfg = fit.cfg
    windows: Windows = ()
    while len(windows) < cfg.max_changes:
        found = fit.best_window(windows)
        if found is None:
            break
        trial = fit.backfit((*windows, found[0]))
        if fit.significance(trial)[-1] < cfg.min_z2:
            more = fit.best_window(trial) if len(trial) < cfg.max_changes else None
            if more is None:
                break
            trial = fit.backfit((*trial, more[0]))
            if _cancel(fit, trial) or min(fit.significance(trial)) < cfg.min_z2:
                break
        windows = trial
    return windows


def _cancel(fit: _Fit, windows: Windows) -> bool:
    """Do the last two changes overlap with opposite signs? Faults that hide one another
    add up; a pair of which one takes away what the other adds is one excursion's shape
    (a group's unmetered use moving), whose pieces must each stand on their own."""
    coef = fit.fit(windows)[1][-2:]
    a, b = windows[-2:]
    return bool(min(a.end, b.end) > max(a.start, b.start) and coef[0] * coef[1] < 0)


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
    wb = {k: _blocks(v, size) for k, v in weights.items()}
    fit = _Fit(_blocks(y, size), _blocks(base, size), wb, cfg)
    windows = _greedy(fit)
    windows = fit.swap_and_prune(windows)
    if not windows:
        return []
    r, coef = fit.fit(windows)
    z2 = fit.significance(windows)
    noise = block_noise_variance(r, 24 // size)
    sse = float(r @ r)
    k = base.shape[1]
    out = []
    for j, (w, c, z) in enumerate(zip(windows, coef[k:], z2, strict=True)):
        hourly = Window(w.shape, offset + w.start * size, offset + w.end * size)
        family = next((f for f in (LEVEL_SHAPES, GROWING_SHAPES) if w.shape in f), ())
        alternatives = {
            alt: (fit.sse((*windows[:j], Window(alt, w.start, w.end), *windows[j + 1 :])) - sse)
            / noise
            for alt in family
            if alt != w.shape and alt in wb
        }
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
