"""Estimated temperatures for a sensor pair balance reported faulty (a faulty_sensor alert).

While the alert holds, the faulty sensor's readings are replaced before the layout turns
temperatures into heat, so the flat's (or riser's) heat is estimated and the building's
shares are recomputed with it: the neighbours' common share moves back too.

- **cascade** (2a, single-pipe risers): the water leaving one radiator enters the next,
  so a return is the supply of the pair below and a supply the return of the pair above,
  each plus the pipe's loss between them (the median difference fitted on the hours
  before the fault);
- **history** (1b, 2b, and a riser's first or last radiator): the pair's ΔT is its peers'
  median ΔT (the other pairs of its riser, else of the building) times the ratio it kept
  to theirs before the fault; a faulty supply is its return plus that ΔT, a faulty return
  its supply minus it; a swapped pair's supply is its peers' median supply plus the
  offset it kept to it.

An hour whose reference is missing keeps the sensor missing, and the layout's rule for a
missing temperature applies (docs/allocation.md, section 3).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from balans_allocation.building import HOUR, Building, SensorPair
from balans_allocation.kernels import MAX_TEMP_CENTI_C, MISSING_TEMP

Method = Literal["cascade", "history"]
HEATING_DT_K = 1.0  # peers' median ΔT above this: the heating runs (an hour worth fitting)
MIN_FIT_HOURS = 8


@dataclass(frozen=True)
class Neighbours:
    """The pairs an estimate of ``serial`` is read from."""

    above: int | None  # the pair upstream on its single-pipe riser (2a)
    below: int | None  # the pair downstream
    peers: tuple[int, ...]  # the pairs its ΔT is compared with


@dataclass(frozen=True)
class SensorEstimate:
    """One faulty pair's estimate over [first_hour, last_hour] (last_hour None: open)."""

    alert_id: int
    module_serial: int
    sensor: str  # supply, return or pair (both)
    method: Method
    first_hour: datetime
    last_hour: datetime | None
    flat_ids: tuple[int, ...]
    coefficients: dict[str, Any] = field(default_factory=dict)

    def active(self, start: datetime, hours: int) -> np.ndarray:
        """bool [hour] of the window [start, start + hours h): the estimate holds."""
        index = np.arange(hours)
        on = index >= (self.first_hour - start) / HOUR
        if self.last_hour is not None:
            on &= index <= (self.last_hour - start) / HOUR
        return on


def neighbours(building: Building, floors: dict[int, int], serial: int) -> Neighbours:
    """Where the pair ``serial`` sits: its neighbours along a single-pipe riser (2a; water
    runs top-down) and its peers (the other pairs of its riser, or of its position)."""
    pair = next(p for p in building.pairs if p.module_serial == serial)
    same = [p for p in building.pairs if p.position == pair.position and p != pair]
    riser = [p for p in same if p.riser_id is not None and p.riser_id == pair.riser_id]
    peers = riser if len(riser) >= 2 else same
    above = below = None
    if building.layout == "2a" and pair.position == "flat" and pair.flat_id in floors:
        chain = sorted(
            [p for p in riser if p.flat_id in floors] + [pair],
            key=lambda p: -floors[p.flat_id or 0],
        )
        at = chain.index(pair)
        above = chain[at - 1].module_serial if at > 0 else None
        below = chain[at + 1].module_serial if at + 1 < len(chain) else None
    return Neighbours(above, below, tuple(p.module_serial for p in peers))


def flats_on(building: Building, pair: SensorPair) -> tuple[int, ...]:
    """The flats whose heat rests on ``pair``: its flat, or the flats on its riser (2b)."""
    if pair.flat_id is not None:
        return (pair.flat_id,)
    return tuple(sorted({f for f, r, _ in building.radiators if r == pair.riser_id}))


def _celsius(t: np.ndarray) -> np.ndarray:
    valid = (t >= 0) & (t <= MAX_TEMP_CENTI_C)
    return np.where(valid, t / 100.0, np.nan)


def _nanmedian(a: np.ndarray, axis: int | None = None) -> np.ndarray:
    with warnings.catch_warnings():  # an hour (or fit) without any value: NaN, as meant
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(a, axis=axis))


def _median(x: np.ndarray) -> float | None:
    x = x[np.isfinite(x)]
    return round(float(np.median(x)), 4) if x.size >= MIN_FIT_HOURS else None


class _Temperatures:
    """A window's temperatures in °C (NaN: missing or out of range), columns by serial."""

    def __init__(self, serials: Sequence[int], t_flow: np.ndarray, t_return: np.ndarray) -> None:
        self.col = {s: i for i, s in enumerate(serials)}
        self.flow = _celsius(t_flow)
        self.ret = _celsius(t_return)

    def of(self, serial: int | None) -> tuple[np.ndarray, np.ndarray] | None:
        if serial is None or serial not in self.col:
            return None
        i = self.col[serial]
        return self.flow[:, i], self.ret[:, i]

    def peers(self, serials: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Peers' median supply and ΔT per hour."""
        cols = [self.col[s] for s in serials if s in self.col]
        if not cols:
            nan = np.full(self.flow.shape[0], np.nan)
            return nan, nan.copy()
        flow, ret = self.flow[:, cols], self.ret[:, cols]
        return _nanmedian(flow, axis=1), _nanmedian(flow - ret, axis=1)


def method_of(sensor: str, nb: Neighbours, coefficients: dict[str, Any]) -> Method:
    """``cascade`` where every replaced sensor has its riser neighbour and a fitted loss."""
    needs = {"supply": ("above",), "return": ("below",), "pair": ("above", "below")}[sensor]
    ok = all(
        getattr(nb, side) is not None and coefficients.get(f"{side}_offset_k") is not None
        for side in needs
    )
    return "cascade" if ok else "history"


def fit(
    serial: int,
    nb: Neighbours,
    serials: Sequence[int],
    t_flow: np.ndarray,
    t_return: np.ndarray,
) -> dict[str, Any]:
    """The coefficients of pair ``serial``'s estimate, fitted on heating hours before the
    fault (int16 centi-°C [hour, pair] windows, columns ``serials``); a coefficient with
    too few hours is None (the ratio then 1, the offset 0)."""
    t = _Temperatures(serials, t_flow, t_return)
    own = t.of(serial)
    peer_flow, peer_dt = t.peers(nb.peers)
    heating = np.nan_to_num(peer_dt) > HEATING_DT_K
    coefficients: dict[str, Any] = {"above": nb.above, "below": nb.below, "peers": list(nb.peers)}
    if own is None:
        return coefficients | {"dt_ratio": None, "peer_supply_offset_k": None}
    flow, ret = own
    with np.errstate(invalid="ignore", divide="ignore"):
        coefficients["dt_ratio"] = _median(np.where(heating, (flow - ret) / peer_dt, np.nan))
    coefficients["peer_supply_offset_k"] = _median(np.where(heating, flow - peer_flow, np.nan))
    above, below = t.of(nb.above), t.of(nb.below)
    # the loss between one radiator's outlet and the next one's inlet
    coefficients["above_offset_k"] = (
        _median(np.where(heating, flow - above[1], np.nan)) if above else None
    )
    coefficients["below_offset_k"] = (
        _median(np.where(heating, ret - below[0], np.nan)) if below else None
    )
    return coefficients


def _estimated(e: SensorEstimate, t: _Temperatures) -> tuple[np.ndarray, np.ndarray]:
    """The pair's supply and return (°C) with its faulty sensor(s) estimated every hour."""
    c = e.coefficients
    own = t.of(e.module_serial)
    assert own is not None
    flow, ret = own
    peer_flow, peer_dt = t.peers(c.get("peers", []))
    dt = (c.get("dt_ratio") or 1.0) * peer_dt
    cascade = e.method == "cascade"
    if e.sensor in ("supply", "pair"):
        if e.sensor == "supply":
            fallback = ret + dt
        else:
            fallback = peer_flow + (c.get("peer_supply_offset_k") or 0.0)
        above = t.of(c.get("above")) if cascade else None
        estimate = above[1] + c["above_offset_k"] if above else np.full_like(flow, np.nan)
        flow = np.where(np.isfinite(estimate), estimate, fallback)
    if e.sensor in ("return", "pair"):
        below = t.of(c.get("below")) if cascade else None
        estimate = below[0] + c["below_offset_k"] if below else np.full_like(ret, np.nan)
        ret = np.where(np.isfinite(estimate), estimate, flow - dt)
    return flow, ret


def _centi(celsius: np.ndarray) -> np.ndarray:
    return np.where(
        np.isfinite(celsius), np.round(np.nan_to_num(celsius) * 100), MISSING_TEMP
    ).astype(np.int16)


def apply(
    estimates: Sequence[SensorEstimate],
    serials: Sequence[int],
    t_flow: np.ndarray,
    t_return: np.ndarray,
    start: datetime,
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """The window's temperatures with each estimate's sensors replaced in its hours, and
    each estimate's bool [hour] mask of the hours it replaced. Every estimate reads the
    readings as stored (one faulty pair's estimate is not another's reference)."""
    t = _Temperatures(serials, t_flow, t_return)
    flow_out, ret_out = t_flow.copy(), t_return.copy()
    masks = []
    for e in estimates:
        on = e.active(start, t_flow.shape[0])
        if e.module_serial not in t.col:
            masks.append(np.zeros_like(on))
            continue
        col = t.col[e.module_serial]
        flow, ret = _estimated(e, t)
        flow_out[:, col] = np.where(on, _centi(flow), flow_out[:, col])
        ret_out[:, col] = np.where(on, _centi(ret), ret_out[:, col])
        masks.append(on)
    return flow_out, ret_out, masks
