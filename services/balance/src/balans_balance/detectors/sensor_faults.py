"""Faulty temperature sensors: the pair a flat's or riser's heat rests on, checked against
the physics around it.

Every sensor is predicted from an independent reference, fitted on the window's first
heating week (the pair's own history):

- a supply sensor from the water that reaches it: in a single-pipe riser (2a) the return
  of the radiator above (the water leaving one radiator enters the next), at the top of
  a riser and in 1b/2b the building's supply (the other pairs' median supply);
- a return sensor from the water that leaves it: in a single-pipe riser the supply of
  the radiator below; at the bottom and in 1b/2b from the supply reference and the
  neighbours' ΔT.

A sensor whose reading leaves its prediction by more than ``min_deviation_k`` (and its
own noise) for ``smooth_hours`` running is faulty. A broken cascade link (a return and
the next supply disagree) blames the pair whose own ΔT moved against its neighbours'.
The shape names the fault: a sensor repeating one value while its reference moves is
frozen; a pair whose ΔT turned negative while its neighbours heat is swapped; a sensor
reading the room is detached; a return pulled towards the room in proportion to its
distance from it is displaced; anything else (a growing or constant offset) drifts. An
episode whose level jumps while the sensor stays off is two faults, each with its shape.
Where the first pass finds faults, a second leaves the faulty pairs' hours out of the
neighbours' ΔT that returns are predicted from.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from balans_balance.findings import Finding
from balans_balance.loading import BuildingData, SensorPair
from balans_balance.medians import median, nanmedian, trailing_median
from balans_balance.reasons import reason

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ROOM_C = (15.0, 26.0)  # what a sensor off the pipe reads indoors
ROOM_MID_C = 20.0
OWN_SUPPLY = "its supply and its neighbours' ΔT"
STILL_SHARE = 0.05  # a riser meter registering less of its usual flow stands still


@dataclass(frozen=True)
class SensorSettings:
    baseline_hours: int = 168  # heating hours the predictions are fitted on
    min_baseline: int = 48
    smooth_hours: int = 6  # a deviation must hold this long (trailing median)
    min_deviation_k: float = 1.0
    noise_factor: float = 6.0  # ... and exceed this many of the sensor's own noise
    heating_dt_k: float = 1.0  # neighbours' median ΔT above this: the heating runs
    # a riser's return drifting less than its hourly noise (2b): the day's median off by
    # this much, confirmed by the building's return against the risers' mixed returns
    slow_hours: int = 24
    slow_deviation_k: float = 0.6
    mixing_noise_factor: float = 6.0
    # ... and never less than this (K): the fit's week underrates how far the mix of the
    # risers' sensors and the building's own sensor wander apart over weeks (the day's
    # median of their difference reached 0.1-0.17 K in fault-free weeks after the fit,
    # where the fit's week said 0.005-0.013 K)
    mixing_min_k: float = 0.1
    slow_min_hours: int = 12  # confirmed this many hours running
    frozen_hours: int = 8  # one value repeated this long while the reference moves
    gap_hours: int = 12  # deviating hours this close are one episode
    level_hours: int = 12  # an episode's level before and after a jump (_jump)
    min_episode_hours: int = 4


@dataclass(frozen=True)
class SensorFault:
    pair: SensorPair
    sensor: str  # "supply", "return" or "pair"
    shape: str  # frozen, swapped, detached, displaced, drifting
    first: int  # hour positions
    last: int
    detected: int
    deviation_k: float  # median reading minus prediction over the episode
    reference: str  # what the prediction came from
    # the second fault of a sensor whose level jumped while it stayed off (_jump): a
    # cause of its own, not the first one's continuation
    after_jump: bool = False


def _episodes(mask: BoolArray, gap: int) -> list[tuple[int, int]]:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out, start, prev = [], int(idx[0]), int(idx[0])
    for i in idx[1:]:
        if i - prev > gap:
            out.append((start, prev))
            start = int(i)
        prev = int(i)
    out.append((start, prev))
    return out


class _Chains:
    """Where each pair sits: its neighbours along a single-pipe riser (water top-down)."""

    def __init__(self, pairs: list[SensorPair]) -> None:
        self.above: dict[int, int] = {}
        self.below: dict[int, int] = {}
        self.riser_of: dict[int, list[int]] = {}  # pair -> every pair of its riser chain
        risers: dict[int, list[int]] = {}
        for i, p in enumerate(pairs):
            if p.position == "flat" and p.riser is not None and p.floor is not None:
                risers.setdefault(p.riser, []).append(i)
        for chain in risers.values():
            chain.sort(key=lambda i: -(pairs[i].floor or 0))
            self.riser_of.update(dict.fromkeys(chain, chain))
            for upper, lower in itertools.pairwise(chain):
                self.below[upper], self.above[lower] = lower, upper


def _fit(x: FloatArray, y: FloatArray, use: BoolArray) -> FloatArray | None:
    """Least-squares y ~ x (columns), refitted without the worst residuals; None without
    enough hours."""
    ok = use & np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    if ok.sum() < 8:
        return None
    design = np.column_stack([np.ones(len(y)), x])
    coef = np.linalg.lstsq(design[ok], y[ok], rcond=None)[0]
    res = y - design @ coef
    mad = median(np.abs(res[ok])) or 0.01
    keep = ok & (np.abs(res) <= 4 * mad)
    if keep.sum() >= 8:
        coef = np.linalg.lstsq(design[keep], y[keep], rcond=None)[0]
    return np.asarray(design @ coef)


@dataclass(frozen=True)
class _Mixing:
    """The risers' flow-weighted return against the building's return sensor."""

    on_flow: list[int]  # the pairs whose riser's flow is metered
    total: FloatArray  # the risers' summed flow
    missing: FloatArray  # the day's median of the building's return under its prediction
    noise: float  # its robust SD over the baseline


class _Building:
    def __init__(
        self,
        pairs: list[SensorPair],
        building_supply: FloatArray,
        cfg: SensorSettings,
        riser_flow: dict[int, FloatArray] | None = None,
        building_return: FloatArray | None = None,
        faulty: BoolArray | None = None,
        supply_off: BoolArray | None = None,
    ) -> None:
        self.pairs = pairs
        self.riser_flow = riser_flow or {}
        self.building_return = building_return
        # what several checks of one event share, computed once
        self._daily: dict[str, FloatArray] = {}  # sensor -> [pair, hour]
        self._predictions: dict[tuple[int, str], tuple[FloatArray | None, str]] = {}
        self._riser_moved: dict[int, BoolArray] = {}
        self._mixing: _Mixing | bool | None = False  # False: not computed yet
        self._usual_flows: dict[int, FloatArray] | None = None
        self._usual_level: dict[int, float] = {}
        self.cfg = cfg
        self.supply = np.vstack([p.supply_c for p in self.pairs])
        self.ret = np.vstack([p.return_c for p in self.pairs])
        self.dt = self.supply - self.ret
        # the neighbours' ΔT, the reference of every return predicted from its own
        # supply, leaves out the hours a pair was found faulty (``faulty`` [pair, hour]):
        # two of a building's four risers with a sensor off the pipe move the median
        # ΔT, and their healthy neighbours' returns with it
        self.ref_dt = self.dt if faulty is None else np.where(faulty, np.nan, self.dt)
        # [pair, hour] supply sensors the first pass found faulty (None: none known)
        self.supply_off = supply_off
        self.chains = _Chains(self.pairs)
        peer_dt = nanmedian(self.ref_dt)
        self.heating = np.nan_to_num(peer_dt) > cfg.heating_dt_k
        heads = [i for i in range(len(self.pairs)) if i not in self.chains.above]
        supply = building_supply if np.isfinite(building_supply).any() else self.supply[heads[0]]
        self.head_supply = np.where(np.isfinite(supply), supply, nanmedian(self.supply[heads]))
        self.peer_dt = peer_dt
        hours = np.flatnonzero(self.heating)[: cfg.baseline_hours]
        self.baseline = np.zeros(len(building_supply), dtype=bool)
        self.baseline[hours] = True

    def prediction(self, i: int, sensor: str) -> tuple[FloatArray | None, str]:
        """The fitted prediction of pair ``i``'s ``sensor`` and what it came from."""
        if (i, sensor) not in self._predictions:
            self._predictions[i, sensor] = self._predict(i, sensor)
        return self._predictions[i, sensor]

    def _predict(self, i: int, sensor: str) -> tuple[FloatArray | None, str]:
        if sensor == "supply":
            if i in self.chains.above:
                up = self.pairs[self.chains.above[i]]
                x, ref = self.ret[self.chains.above[i]], f"return of the pair above ({up.flat})"
            else:
                x, ref = self.head_supply, "the building's supply"
            return _fit(x[:, None], self.supply[i], self.baseline), ref
        if i in self.chains.below:
            down = self.pairs[self.chains.below[i]]
            x, ref = self.supply[self.chains.below[i]], f"supply of the pair below ({down.flat})"
            return _fit(x[:, None], self.ret[i], self.baseline), ref
        # its own supply (checked on its own against the water reaching it) and how much
        # its neighbours cool their water (on the same riser where there is one: a
        # clogged riser cools all its radiators more)
        x2 = np.column_stack([self.supply[i], self.neighbours_dt(i)])
        return _fit(x2, self.ret[i], self.baseline), OWN_SUPPLY

    def riser_moved(self, i: int) -> BoolArray:
        """Hours when ``i``'s riser as a whole cools its water differently than the
        building's other risers (its ΔT against theirs off its history by > 15 %): a
        clogged or opened-up riser, which no one sensor explains."""
        chain = self.chains.riser_of.get(i, [])
        if len(chain) < 3:
            return np.zeros(len(self.peer_dt), dtype=bool)
        if chain[0] not in self._riser_moved:  # one answer for the whole chain
            self._riser_moved[chain[0]] = self._chain_moved(chain)
        return self._riser_moved[chain[0]]

    def _chain_moved(self, chain: list[int]) -> BoolArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = nanmedian(self.ref_dt[chain]) / self.peer_dt
        ratio = np.where(self.heating, ratio, np.nan)
        base = ratio[self.baseline & np.isfinite(ratio)]
        if base.size < 8:
            return np.zeros(len(self.peer_dt), dtype=bool)
        smooth = trailing_median(ratio, self.cfg.smooth_hours)
        return np.asarray(np.abs(np.nan_to_num(smooth / np.median(base) - 1)) > 0.15)

    def flow_moved(self, i: int) -> BoolArray:
        """Hours when the flow of pair ``i``'s riser (its flow meter on the pair's module,
        2b) moved against the other risers' by > 15 %, each against its own usual
        (:meth:`usual_flows`): a clog or an opened valve cools the water differently,
        which no sensor explains; and the hours its own register stood still."""
        module = self.pairs[i].module_serial
        usual = self.usual_flows()
        if module not in usual or len(usual) < 2:
            return np.zeros(len(self.peer_dt), dtype=bool)
        others = nanmedian(np.vstack([f for m, f in usual.items() if m != module]))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(self.heating, usual[module] / others, np.nan)
        smooth = trailing_median(ratio, self.cfg.smooth_hours)
        # its own register still: whether its water moved is not known, so its return
        # cannot be judged against the others' (a still meter on a clogged riser)
        own_still = np.isnan(usual[module]) & np.isfinite(self.riser_flow[module])
        return np.asarray((np.abs(np.nan_to_num(smooth - 1)) > 0.15) | own_still)

    def usual_flows(self) -> dict[int, FloatArray]:
        """Each metered riser's flow over its own usual (its median over the baseline's
        heating hours), by module, NaN where its register stood still (under
        ``STILL_SHARE`` of its usual: a heated riser's water flows, so that is its meter,
        no measure of the water); risers without 8 such hours left out. The risers
        differ in size, so the others' flows are compared each against its own history:
        the median of their raw flows jumps by a third or more when one riser near the
        middle stops registering, and made every riser's flow look moved."""
        if self._usual_flows is None:
            self._usual_flows = {}
            for module, flow in self.riser_flow.items():
                base = flow[self.baseline & self.heating & np.isfinite(flow)]
                if base.size >= 8 and (usual := median(base)) > 0:
                    self._usual_level[module] = usual
                    relative = flow / usual
                    self._usual_flows[module] = np.where(relative < STILL_SHARE, np.nan, relative)
        return self._usual_flows

    def mixing_flow(self, module: int) -> FloatArray:
        """A riser's flow as its water mixes into the building's return: its meter's,
        its usual where that register stood still (its water still flows; weighed at
        nothing, the mix left its return out and moved by a riser's share)."""
        flow = self.riser_flow[module]
        relative = self.usual_flows().get(module)
        if relative is None:
            return flow
        still = np.isnan(relative) & np.isfinite(flow)
        return np.where(still, self._usual_level[module], flow)

    def daily_deviation(self, i: int, sensor: str) -> FloatArray:
        """Pair ``i``'s ``sensor`` against its prediction, the trailing day's median (K)."""
        if sensor not in self._daily:  # every pair's at once
            res = np.vstack([self.residual(j, sensor) for j in range(len(self.pairs))])
            self._daily[sensor] = trailing_median(
                np.where(self.heating, res, np.nan), self.cfg.slow_hours
            )
        return self._daily[sensor][i]

    def residual(self, i: int, sensor: str) -> FloatArray:
        """Pair ``i``'s ``sensor`` against its prediction (NaN without one)."""
        pred, _ = self.prediction(i, sensor)
        if pred is None:
            return np.full(len(self.peer_dt), np.nan)
        return (self.supply[i] if sensor == "supply" else self.ret[i]) - pred

    def mixing_confirms(self, i: int, deviation: FloatArray) -> BoolArray:
        """Hours when the building's return confirms that pair ``i``'s return sensor is
        off by ``deviation`` (its day's median against its prediction): the risers' water
        mixes into the building's return, so a riser sensor reading ``d`` too warm makes
        the risers' flow-weighted mean ``w·d`` warmer than the building's sensor reads
        (``w`` the riser's share of the flow), while water that really is warmer moves
        both. Needs every riser's flow (2b) and the building's return."""
        none = np.zeros(len(self.peer_dt), dtype=bool)
        module = self.pairs[i].module_serial
        mixing = self.mixing()
        if mixing is None or i not in mixing.on_flow:
            return none
        # sensors fail one at a time: other risers' returns off their predictions as
        # well are a common cause (the predictions' reference moved), not this sensor;
        # but a return predicted from its own supply while that supply was found faulty
        # is off by that supply's fault (a riser's frozen supply had vetoed another
        # riser's drift for the rest of the window)
        others = [
            np.where(self.inherits_supply_fault(j), 0.0, self.daily_deviation(j, "return"))
            for j in mixing.on_flow
            if j != i
        ]
        alone = ~np.any(np.abs(np.nan_to_num(np.vstack(others))) > self.cfg.slow_deviation_k, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = self.mixing_flow(module) / mixing.total
        expected = trailing_median(share, self.cfg.slow_hours) * deviation
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = mixing.missing / expected
            return np.asarray(
                alone & (np.abs(mixing.missing) > self.mixing_limit()) & (ratio > 0.5) & (ratio < 2)
            )

    def mixing_limit(self) -> float:
        """How far (K) the building's return must move to confirm a riser's sensor."""
        mixing = self.mixing()
        assert mixing is not None
        return max(self.cfg.mixing_min_k, self.cfg.mixing_noise_factor * mixing.noise)

    def inherits_supply_fault(self, j: int) -> BoolArray:
        """Hours pair ``j``'s return is predicted from its own supply sensor while the
        first pass found that sensor faulty."""
        if self.supply_off is None or self.prediction(j, "return")[1] != OWN_SUPPLY:
            return np.zeros(len(self.peer_dt), dtype=bool)
        return self.supply_off[j]

    def mixing(self) -> _Mixing | None:
        """The risers' mixed return against the building's (the same for every riser
        pair :meth:`mixing_confirms` checks); None where it cannot be told."""
        if self._mixing is False:
            self._mixing = self._mix()
        return self._mixing if isinstance(self._mixing, _Mixing) else None

    def _mix(self) -> _Mixing | None:
        on_flow = [j for j, p in enumerate(self.pairs) if p.module_serial in self.riser_flow]
        if self.building_return is None or len(on_flow) < 3:
            return None
        flow = np.vstack([self.mixing_flow(self.pairs[j].module_serial) for j in on_flow])
        with np.errstate(divide="ignore", invalid="ignore"):
            total = flow.sum(axis=0)  # NaN where a riser's flow is unknown
            mixed = (flow * self.ret[on_flow]).sum(axis=0) / total
        pred = _fit(mixed[:, None], self.building_return, self.baseline)
        if pred is None:
            return None
        day = self.cfg.slow_hours
        missing = trailing_median(np.where(self.heating, pred - self.building_return, np.nan), day)
        return _Mixing(on_flow, total, missing, _robust_sd(missing[self.baseline]))

    def neighbours_dt(self, i: int) -> FloatArray:
        """Median ΔT of the other pairs on ``i``'s riser chain (of the building's where
        the chain is short or there is none)."""
        chain = [j for j in self.chains.riser_of.get(i, []) if j != i]
        return self.peer_dt if len(chain) < 2 else nanmedian(self.ref_dt[chain])

    def dt_shift(self, i: int, span: slice) -> float:
        """How far pair ``i``'s ΔT moved (K) against its own history beside its peers'."""
        pred = _fit(self.peer_dt[:, None], self.dt[i], self.baseline)
        if pred is None:
            return 0.0
        moved = (self.dt[i] - pred)[span]
        moved = moved[np.isfinite(moved)]
        return float(abs(np.median(moved))) if moved.size else 0.0


def _frozen(b: _Building, i: int, sensor: str, pred: FloatArray) -> list[tuple[int, int]]:
    """Runs of one repeated reading while the prediction moves."""
    reading = b.supply[i] if sensor == "supply" else b.ret[i]
    same = np.r_[False, np.diff(reading) == 0]
    out = []
    for lo, hi in _episodes(same, 1):
        lo -= 1  # the first hour of the run repeats nothing yet
        if hi - lo + 1 < b.cfg.frozen_hours:
            continue
        moved = pred[lo : hi + 1]
        moved = moved[np.isfinite(moved)]
        if moved.size and np.ptp(moved) > 0.5:
            out.append((lo, hi))
    return out


def _shape(b: _Building, i: int, sensor: str, pred: FloatArray, lo: int, hi: int) -> str:
    reading = (b.supply[i] if sensor == "supply" else b.ret[i])[lo : hi + 1]
    p = pred[lo : hi + 1]
    ok = np.isfinite(reading) & np.isfinite(p)
    reading, p = reading[ok], p[ok]
    if ROOM_C[0] <= np.median(reading) <= ROOM_C[1] and np.median(p) > ROOM_C[1] + 5:
        return "detached"
    d = reading - p
    if sensor == "return" and np.median(d) < 0 and reading.size >= 6:
        # displaced: pulled a steady share of the way to the room (d = share x (room -
        # water)); a drift: an offset that stays or grows with time, whatever the water
        gap = ROOM_MID_C - p
        share = float(np.median(d / np.minimum(gap, -1.0)))
        pulled = float(np.median(np.abs(d - share * gap)))  # robust: the episode's edges
        t = np.arange(d.size, dtype=float)
        drift = np.polyval(np.polyfit(t, d, 1), t)
        if share > 0.1 and pulled <= float(np.median(np.abs(d - drift))):
            return "displaced"
    return "drifting"


def _robust_sd(x: FloatArray) -> float:
    x = x[np.isfinite(x)]
    return 1.4826 * median(np.abs(x - median(x))) if x.size else 0.0


def _one_sensor_moved(res: dict[str, FloatArray], own_supply: bool, lo: int, hi: int) -> bool:
    """Did only one sensor of the pair leave its prediction over ``lo..hi``? A swapped
    pair moves both, each by the pair's ΔT the other way; a sensor drifting or displaced
    past the other can invert the ΔT too, but its partner still reads its own water.
    ``own_supply``: the return is predicted from the pair's own supply (and its
    neighbours' ΔT), so it carries the supply's error the other way; what the return
    moved by itself is its residual plus the supply's (a supply off by ``d`` leaves it
    at 0, a swap at the pair's ΔT)."""
    if len(res) < 2:
        return False
    supply, ret = (float(nanmedian(res[s][lo : hi + 1])) for s in ("supply", "return"))
    if own_supply:
        ret += supply
    moved = sorted((abs(supply), abs(ret)))
    return moved[0] < 0.3 * moved[1]


def _deviations(b: _Building) -> list[SensorFault]:
    """Every sensor's episodes away from its prediction, frozen runs and swapped pairs."""
    cfg = b.cfg
    out: list[SensorFault] = []
    sensors = ("supply", "return")
    # every pair's and sensor's trailing medians at once (one sort of all windows)
    swapped_all = trailing_median(np.where(b.heating, b.dt, np.nan), cfg.smooth_hours)
    residual_all = np.stack([[b.residual(i, s) for s in sensors] for i in range(len(b.pairs))])
    smooth_all = trailing_median(np.where(b.heating, residual_all, np.nan), cfg.smooth_hours)
    for i, pair in enumerate(b.pairs):
        predictions = {s: b.prediction(i, s) for s in sensors}
        residuals = {
            s: residual_all[i, k]
            for k, (s, (pred, _)) in enumerate(predictions.items())
            if pred is not None
        }
        swapped_mask = np.nan_to_num(swapped_all[i], nan=0.0) < -0.5
        for lo, hi in _episodes(swapped_mask, cfg.gap_hours):
            start = max(0, lo - cfg.smooth_hours + 1)
            coldest = nanmedian(np.fmin(b.supply[i], b.ret[i])[start : hi + 1])
            if ROOM_C[0] <= coldest <= ROOM_C[1]:
                continue  # a sensor reading the room: detached, told by that sensor
            own_supply = predictions["return"][1] == OWN_SUPPLY
            if _one_sensor_moved(residuals, own_supply, lo, hi):
                continue  # one sensor off past the other: told by that sensor
            dev = float(nanmedian(b.dt[i, lo : hi + 1]))
            out.append(SensorFault(pair, "pair", "swapped", start, hi, lo, dev, "its own ΔT"))
        for sensor, (pred, ref) in predictions.items():
            if pred is None:
                continue
            res = residuals[sensor]
            limit = max(cfg.min_deviation_k, cfg.noise_factor * _robust_sd(res[b.baseline]))
            for lo, hi in _frozen(b, i, sensor, pred):
                out.append(
                    SensorFault(pair, sensor, "frozen", lo, hi, lo + cfg.frozen_hours - 1, 0.0, ref)
                )
            smooth = smooth_all[i, sensors.index(sensor)]
            mask = np.abs(np.nan_to_num(smooth)) > limit
            if sensor == "return":
                # a drift under the hourly noise, which the building's return confirms
                # (real water moving, a clog or a valve, moves that return too)
                daily = b.daily_deviation(i, "return")
                slow = (np.abs(np.nan_to_num(daily)) > cfg.slow_deviation_k) & (
                    b.mixing_confirms(i, daily)
                )
                _add_slow(mask, slow, cfg)
                if i not in b.chains.below:
                    # its reference is the riser it sits on: while that riser's water
                    # cools differently or its flow moved (a clog), neither the hourly
                    # rule nor the day's tells a sensor (the mix of returns many K apart
                    # confirms by a few hundredths of a K, within what the mix's model
                    # wanders)
                    mask &= ~(b.riser_moved(i) | b.flow_moved(i))
            elif i not in b.chains.above:
                # a supply fed the building's own water, which nothing on its way moves
                # by itself: a drift too slow for the 6 h limit, once the day's median
                # leaves it by the slow limit and its own day-median noise (and the 6 h
                # median still does: the day's lags a fault's end by half a day)
                daily = b.daily_deviation(i, "supply")
                slow_limit = max(
                    cfg.slow_deviation_k, cfg.noise_factor * _robust_sd(daily[b.baseline])
                )
                off = np.abs(np.nan_to_num(np.vstack([daily, smooth]))) > slow_limit
                _add_slow(mask, off.all(axis=0), cfg)
            for lo, hi in _episodes(mask, cfg.gap_hours):
                if hi - lo + 1 < cfg.min_episode_hours:
                    continue
                # (first hour, detected, the hours its shape is told on, last hour)
                pieces = [(max(0, lo - cfg.smooth_hours + 1), lo, lo, hi)]
                jump = _jump(res, lo, hi, limit, cfg.level_hours)
                if jump is not None:
                    detected = min(jump + cfg.smooth_hours - 1, hi)
                    pieces = [(pieces[0][0], lo, lo, jump - 1), (jump, detected, jump, hi)]
                for start, detected, told, last in pieces:
                    shape = _shape(b, i, sensor, pred, told, last)
                    dev = float(nanmedian(res[start : last + 1]))
                    out.append(
                        SensorFault(
                            pair, sensor, shape, start, last, detected, dev, ref, start == jump
                        )
                    )
    return out


def _add_slow(mask: BoolArray, slow: BoolArray, cfg: SensorSettings) -> None:
    """Mark in ``mask`` the runs of ``slow`` (a day's median off) that held for
    ``slow_min_hours`` or more."""
    for lo, hi in _episodes(slow, 1):
        mask[lo : hi + 1] |= hi - lo + 1 >= cfg.slow_min_hours


def _jump(res: FloatArray, lo: int, hi: int, limit: float, hours: int) -> int | None:
    """Where a sensor already off its prediction jumped to another fault: the hour whose
    next ``hours`` lie off the ones before by more than three times the deviation limit
    and by more than the deviation before it, and still off by that much (a second fault
    on one sensor, a drift followed by a displacement; a displaced return's share of the
    room's gap moves with the water by a fraction, a drift grows by a little an hour,
    a fault's end falls back to the prediction). None without one."""
    ts = np.arange(lo + hours, hi - hours + 2)
    steps = np.zeros(ts.size)
    for k, t in enumerate(ts):
        before = float(nanmedian(res[t - hours : t]))
        after = float(nanmedian(res[t : t + hours]))
        step = abs(after - before)
        off = abs(after) > 3 * limit  # still off after it: not the fault's end
        if off and step > 3 * limit and step > abs(before):
            steps[k] = step
    if not steps.any():
        return None
    # medians over ``hours`` see a clean jump fully from about half of them before it
    # to half after: the middle of the hours that see nearly all of it
    k = int(np.argmax(steps))
    near = steps >= 0.9 * steps[k]
    first, last = k, k
    while first > 0 and near[first - 1]:
        first -= 1
    while last < near.size - 1 and near[last + 1]:
        last += 1
    return int(ts[(first + last + 1) // 2])


def _overlap(a: SensorFault, c: SensorFault) -> bool:
    return a.first <= c.last and c.first <= a.last


def _blame(b: _Building, faults: list[SensorFault]) -> list[SensorFault]:
    """One fault per cause: a frozen or swapped pair explains its neighbours' broken
    links; a link broken on both sides blames the pair whose ΔT moved; a sensor's
    deviation during its own frozen or swapped episode is that episode. What an episode
    deviated before the fault that explains it began is no part of that fault
    (:func:`_before`)."""
    index = {p.module_serial: i for i, p in enumerate(b.pairs)}
    frozen = [f for f in faults if f.shape == "frozen"]
    # a frozen sensor inverts its pair's ΔT once the water warms past it: not a swap
    strong = frozen + [
        f
        for f in faults
        if f.shape == "swapped" and not any(z.pair is f.pair and _overlap(z, f) for z in frozen)
    ]
    kept: list[SensorFault] = list(strong)
    for f in faults:
        if f.shape in ("frozen", "swapped"):
            continue
        explained = _explained_by(b, f, faults, strong, index[f.pair.module_serial])
        if explained is None:
            kept.append(f)
            continue
        before = _before(b, f, explained, index[f.pair.module_serial])
        if before is not None:
            kept.append(before)
    return kept


def _explained_by(
    b: _Building, f: SensorFault, faults: list[SensorFault], strong: list[SensorFault], i: int
) -> SensorFault | None:
    """The fault that explains ``f``'s deviation (None: ``f`` is its own): its pair's
    frozen or swapped episode, the faulty supply its return is predicted from, the
    neighbour whose own fault broke the link, or the link's other side where that one
    moved its pair's ΔT more."""
    same_pair = [s for s in strong if s.pair is f.pair and _overlap(s, f)]
    if same_pair:
        return same_pair[0]
    if f.reference == OWN_SUPPLY:
        # predicted from its own supply, which is the faulty one
        supply = [g for g in faults if g.pair is f.pair and g.sensor == "supply" and _overlap(g, f)]
        if supply:
            return supply[0]
    linked = b.chains.above.get(i) if f.sensor == "supply" else b.chains.below.get(i)
    if linked is None:
        return None
    other = b.pairs[linked]
    theirs = [s for s in strong if s.pair is other and _overlap(s, f)]
    if theirs:
        return theirs[0]  # the neighbour's own fault broke the link
    partner = "return" if f.sensor == "supply" else "supply"
    for g in faults:
        if (
            g.pair is other
            and g.sensor == partner
            and g.shape not in ("frozen", "swapped")
            and _overlap(g, f)
        ):
            span = slice(f.first, f.last + 1)
            if b.dt_shift(linked, span) > b.dt_shift(i, span):
                return g  # the link's other side moved its pair's ΔT: it is that one
    return None


def _before(b: _Building, f: SensorFault, cause: SensorFault, i: int) -> SensorFault | None:
    """``f`` up to the hour before ``cause`` (the fault that explains its deviation from
    then on) began, where it was detected ``level_hours`` or more before that: a sensor
    off its prediction before its partner froze or its supply failed was not put off by
    that fault (a return drifting for days, then its supply frozen: the freeze's hours
    alone are the freeze's). Its shape and deviation are told on those hours; None when
    nothing is left."""
    cut = cause.first
    if cut - f.detected < b.cfg.level_hours:
        return None
    pred, _ = b.prediction(i, f.sensor)
    assert pred is not None  # f was found against it
    res = b.residual(i, f.sensor)
    return replace(
        f,
        last=cut - 1,
        shape=_shape(b, i, f.sensor, pred, f.detected, cut - 1),
        deviation_k=float(nanmedian(res[f.first : cut])),
    )


def sensor_faults(
    pairs: list[SensorPair],
    building_supply: FloatArray,
    cfg: SensorSettings | None = None,
    riser_flow: dict[int, FloatArray] | None = None,
    building_return: FloatArray | None = None,
) -> list[SensorFault]:
    """The faulty sensors of a building's billed ``pairs`` over their hours, given the
    building pair's hourly supply (NaN where unknown) and, where a riser pair shares
    its module with the riser's flow meter (2b), that meter's hourly flow by module."""
    cfg = cfg or SensorSettings()
    if len(pairs) < 2:
        return []
    b = _Building(pairs, building_supply, cfg, riser_flow, building_return)
    if b.baseline.sum() < cfg.min_baseline:
        return []
    found = _blame(b, _deviations(b))
    if not found:
        return found
    # once more with the hours of the pairs found faulty out of the neighbours' ΔT (a
    # deviation their faults alone caused in that reference goes); where fewer than two
    # pairs would be left, only the sensors whose own readings say they are wrong (off
    # the pipe, swapped, frozen) are left out: a drift or a displacement is told against
    # that reference, and several of them at once may be its own artefacts
    index = {p.module_serial: i for i, p in enumerate(pairs)}
    faulty, evident = np.zeros(b.dt.shape, dtype=bool), np.zeros(b.dt.shape, dtype=bool)
    supply_off = np.zeros(b.dt.shape, dtype=bool)
    for f in found:
        faulty[index[f.pair.module_serial], f.first : f.last + 1] = True
        if f.sensor == "supply":
            supply_off[index[f.pair.module_serial], f.first : f.last + 1] = True
        if f.shape in ("detached", "swapped", "frozen"):
            evident[index[f.pair.module_serial], f.first : f.last + 1] = True
    left = np.sum(np.isfinite(b.dt) & ~faulty, axis=0)
    faulty = np.where(left >= 2, faulty, evident)
    if not faulty.any():
        return found
    b = _Building(pairs, building_supply, cfg, riser_flow, building_return, faulty, supply_off)
    if b.baseline.sum() < cfg.min_baseline:
        return found
    return _blame(b, _deviations(b))


def sensor_findings(data: BuildingData, cfg: SensorSettings | None = None) -> list[Finding]:
    """:func:`sensor_faults` as findings naming the pair's module, flat and riser."""
    out = []
    hours: list[datetime] = data.hours
    on_pair = {p.module_serial for p in data.sensor_pairs if p.position == "riser"}
    riser_flow = {
        module: data.series(meter)
        for meter, module in data.reporting.meter_module.items()
        if module in on_pair and data.roles.get(meter) == "riser" and meter in data.meter_index
    }
    for f in sensor_faults(data.sensor_pairs, data.supply_c, cfg, riser_flow, data.return_c):
        p = f.pair
        code, params, sentence = reason(
            f"faulty_sensor.{f.shape}",
            module=p.module_serial,
            flat=p.flat or "-",
            riser=p.riser if p.riser is not None else "-",
            sensor=f.sensor,
            # the sentence says which way a displaced or detached sensor is off
            deviation_k=round(
                abs(f.deviation_k) if f.shape in ("displaced", "detached") else f.deviation_k, 1
            ),
        )
        out.append(
            Finding(
                kind="faulty_sensor",
                cause_key=f"faulty-sensor:{p.module_serial}:{f.sensor}"
                + (f":{f.shape}" if f.after_jump else ""),
                first_hour=hours[f.first],
                last_hour=hours[f.last],
                active=f.last >= len(hours) - 1,
                summary=sentence,
                reason_code=code,
                reason_params=params,
                detected_hour=hours[f.detected],
                building_id=data.building_id,
                module_serial=p.module_serial,
                evidence={
                    "sensor_fault": f.shape,
                    "sensor": f.sensor,
                    "flat": p.flat,
                    "riser": p.riser,
                    "deviation_k": round(f.deviation_k, 2),
                    "reference": f.reference,
                    "detected_hour": hours[f.detected].isoformat(),
                },
            )
        )
    return out
