"""Faults injected on a schedule, and the ground-truth records that describe them.

The schedule is drawn from the seed; each fault becomes one :class:`FaultRecord` (the
ground-truth JSON line, format in docs/simulator.md) and is turned into per-hour effects
(:class:`FaultEffects`) that the physics, the meters and the mesh apply.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, field_serializer

from balans_db.topology import EquipmentPlan, ModulePlan
from balans_sim.behaviour import UTC_OFFSET_H
from balans_sim.climate import hour_index, hour_start
from balans_sim.sensor_faults import SENSOR_FAULTS, billed_pairs, sensor_params

FaultKind = Literal[
    "leak",
    "unauthorised_connection",
    "magnet",
    "stuck_meter",
    "meter_drift",
    "clogged_riser",
    "building_meter_drift",
    "battery_depletion",
    "dead_module",
    "uplink_outage",
    "no_route",
    "displaced_sensor",
    "swapped_sensors",
    "detached_sensor",
    "sensor_drift",
    "frozen_sensor",
]
UPLINK_OUTAGE = "uplink_outage"  # the concentrator's, scheduled by balans_sim.outages
NO_ROUTE = "no_route"  # a module the equipment plan leaves out of reach, never drawn
FAULT_KINDS: tuple[str, ...] = tuple(
    k
    for k in FaultKind.__args__  # type: ignore[attr-defined]
    if k not in (UPLINK_OUTAGE, NO_ROUTE)
)
METER_FAULTS = ("magnet", "stuck_meter", "meter_drift")
BUILDING_FAULTS = ("leak", "unauthorised_connection", "building_meter_drift")
MODULE_FAULTS = ("battery_depletion", "dead_module")


class Where(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    meter_serial: str | None = None
    module_serial: int | None = None
    input: int | None = None
    flat: str | None = None
    riser: int | None = None


class FaultRecord(BaseModel):
    """One line of the ground-truth file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: FaultKind
    building: str
    start: datetime
    end: datetime | None
    where: Where
    params: dict[str, Any]
    seed: int

    @field_serializer("start", "end")
    def _utc_z(self, ts: datetime | None) -> str | None:
        return None if ts is None else ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    def active(self, hours: np.ndarray) -> np.ndarray:
        """Mask of the absolute hours (each [h, h+1)) during which the fault acts."""
        lo = hour_index(self.start)
        hi = hour_index(self.end) if self.end is not None else np.iinfo(np.int64).max
        return np.asarray((hours >= lo) & (hours < hi))

    def ramp(self, hours: np.ndarray, span: int | None = None) -> np.ndarray:
        """0 at ``start`` rising to 1 after ``span`` hours (default: at ``end``, or 28
        days for a lasting fault), then 1; 0 outside the fault."""
        lo = hour_index(self.start)
        if span is None:
            span = (hour_index(self.end) if self.end is not None else lo + 24 * 28) - lo
        return np.asarray(np.clip((hours + 1 - lo) / max(span, 1), 0, 1) * self.active(hours))

    def error(self, hours: np.ndarray) -> np.ndarray:
        """A drift's error (registered / true − 1) by its ``shape``: ``ramp`` grows to
        ``error_at_end`` at the end, ``settle`` reaches it after ``settle_hours`` and
        stays (a register that slipped and settled), ``step`` is there at once."""
        shape = self.params.get("shape", "ramp")
        if shape == "step":
            grow = self.active(hours).astype(np.float64)
        elif shape == "settle":
            grow = self.ramp(hours, int(self.params["settle_hours"]))
        else:
            grow = self.ramp(hours)
        return np.asarray(self.params["error_at_end"] * grow)

    def leak_rate(self, hours: np.ndarray) -> np.ndarray:
        """m³/h of water a leak loses by its ``shape``: ``constant``; ``growing`` (a crack
        widening from 30 % of ``rate_m3_h``); ``pressure`` (the flow follows the network
        pressure: ±30 % over the day, highest at night when little is drawn)."""
        shape = self.params.get("shape", "constant")
        rate = float(self.params["rate_m3_h"])
        if shape == "growing":
            factor = (0.3 + 0.7 * self.ramp(hours)) * self.active(hours)
        elif shape == "pressure":
            local = (hours + UTC_OFFSET_H) % 24
            factor = (1.0 + 0.3 * np.cos(2 * np.pi * (local - 3) / 24)) * self.active(hours)
        else:
            factor = self.active(hours).astype(np.float64)
        return np.asarray(rate * factor)


def write_ground_truth(path: Path, records: list[FaultRecord]) -> None:
    """Append records to a JSON-lines file, one fault per line."""
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")


def read_ground_truth(path: Path) -> list[FaultRecord]:
    """The faults of a ground-truth file (its meter exchanges and tenant changes, other
    kinds of line, are read with :mod:`balans_sim.lifecycle`)."""
    faults = FaultKind.__args__  # type: ignore[attr-defined]
    return [
        FaultRecord.model_validate_json(line)
        for line in path.read_text().splitlines()
        if line and json.loads(line)["kind"] in faults
    ]


def no_route_records(
    building: str, modules: list[ModulePlan], start_hour: int, seed: int
) -> list[FaultRecord]:
    """A lasting ``no_route`` record from ``start_hour`` for each of ``modules``: modules
    the equipment plan leaves with no radio path to the concentrator, silent throughout."""
    return [
        FaultRecord(
            kind="no_route",
            building=building,
            start=hour_start(start_hour),
            end=None,
            where=Where(module_serial=m.serial, flat=m.flat, riser=m.riser),
            params={"subnet": m.subnet},
            seed=seed,
        )
        for m in modules
    ]


def _where_meter(plan: EquipmentPlan, serial: str) -> Where:
    m = next(m for m in plan.meters if m.serial == serial)
    return Where(
        meter_serial=m.serial, module_serial=m.module, input=m.input, flat=m.flat, riser=m.riser
    )


LEAK_SHAPES = ("constant", "growing", "pressure")
TAP_SHAPES = ("share", "weather", "draw")
DRIFT_SHAPES = ("ramp", "settle", "step")


def _params(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    if kind == "leak":
        shape = LEAK_SHAPES[int(rng.integers(len(LEAK_SHAPES)))]
        return {"rate_m3_h": round(float(rng.uniform(0.3, 1.5)), 3), "shape": shape}
    if kind == "unauthorised_connection":
        shape = TAP_SHAPES[int(rng.integers(len(TAP_SHAPES)))]
        out: dict[str, Any] = {"share": round(float(rng.uniform(0.06, 0.2)), 3), "shape": shape}
        if shape != "draw":
            out["return_dt_k"] = round(float(rng.uniform(10.0, 35.0)), 1)
        return out
    if kind == "magnet":
        stopped = bool(rng.random() < 0.3)
        return {
            "factor": 0.0 if stopped else round(float(rng.uniform(0.2, 0.7)), 3),
            "tamper_flag_raised": bool(rng.random() < 0.4),
        }
    if kind in ("meter_drift", "building_meter_drift"):
        shape = DRIFT_SHAPES[int(rng.integers(len(DRIFT_SHAPES)))]
        error = round(float(rng.choice([-1, 1]) * rng.uniform(0.08, 0.2)), 3)
        drift: dict[str, Any] = {"error_at_end": error, "shape": shape}
        if shape == "settle":
            drift["settle_hours"] = int(rng.integers(24, 97))
        return drift
    if kind == "clogged_riser":
        return {"flow_factor": round(float(rng.uniform(0.3, 0.6)), 3)}
    return {}


def _fit_to_duration(params: dict[str, Any], hours: int | None) -> dict[str, Any]:
    """A drift that settles does so within the first half of a fault that ends."""
    if "settle_hours" in params and hours is not None:
        params["settle_hours"] = max(12, min(params["settle_hours"], hours // 2))
    return params


def schedule_faults(
    *,
    building: str,
    plan: EquipmentPlan,
    vertical: bool,
    seed: int,
    building_index: int,
    start_hour: int,
    hours: int,
    faults_per_week: float,
    kinds: tuple[str, ...] = FAULT_KINDS,
) -> list[FaultRecord]:
    """Draw the building's faults for ``hours`` from ``start_hour`` (Poisson in number)."""
    rng = np.random.default_rng([seed, building_index, 6])
    choices = [k for k in kinds if (k != "clogged_riser" or vertical) and k not in SENSOR_FAULTS]
    count = int(rng.poisson(faults_per_week * hours / 168.0)) if choices else 0
    sub_meters = [m.serial for m in plan.meters if m.utility == "heat" and m.role != "building"]
    building_meter = next(
        m.serial for m in plan.meters if m.role == "building" and m.utility == "heat"
    )
    field_modules = [m for m in plan.modules if m.floor > 0]
    risers = sorted({m.riser for m in plan.meters if m.role == "riser" and m.riser is not None})
    records = []
    for _ in range(count):
        kind = choices[int(rng.integers(len(choices)))]
        first = start_hour + int(rng.integers(0, max(hours - 24, 1)))
        lasting = rng.random() < 0.3 or (kind == "dead_module" and rng.random() < 0.5)
        last = None if lasting else min(first + int(rng.integers(24, 24 * 6)), start_hour + hours)
        if kind == "battery_depletion":
            last = last or start_hour + hours
        if kind in METER_FAULTS:
            where = _where_meter(plan, sub_meters[int(rng.integers(len(sub_meters)))])
        elif kind in BUILDING_FAULTS:
            where = _where_meter(plan, building_meter)
        elif kind == "clogged_riser":
            riser = risers[int(rng.integers(len(risers)))]
            m = next(m for m in plan.meters if m.role == "riser" and m.riser == riser)
            where = Where(meter_serial=m.serial, module_serial=m.module, input=m.input, riser=riser)
        else:
            mod = field_modules[int(rng.integers(len(field_modules)))]
            where = Where(module_serial=mod.serial, flat=mod.flat, riser=mod.riser)
        records.append(
            FaultRecord(
                kind=cast(FaultKind, kind),
                building=building,
                start=hour_start(first),
                end=None if last is None else hour_start(last),
                where=where,
                params=_fit_to_duration(_params(kind, rng), last - first if last else None),
                seed=seed,
            )
        )
    sensor_kinds = tuple(k for k in kinds if k in SENSOR_FAULTS)
    return records + _schedule_sensor_faults(
        building, plan, seed, building_index, start_hour, hours, faults_per_week, sensor_kinds
    )


def _schedule_sensor_faults(
    building: str,
    plan: EquipmentPlan,
    seed: int,
    building_index: int,
    start_hour: int,
    hours: int,
    faults_per_week: float,
    kinds: tuple[str, ...],
) -> list[FaultRecord]:
    """Sensor faults on the pairs a bill rests on, drawn from their own stream (the other
    faults' schedule stays what it was): in number, half the other faults' rate.

    A pair already misreading gets no second fault until its first one ends: swapping
    or pulling off a sensor that is already swapped or off the pipe changes nothing the
    data could show, and two shapes on one sensor at once are a blend no record names
    (the draw is still made, so the pair's later faults stay where they were)."""
    pairs = billed_pairs(plan)
    if not kinds or not pairs:
        return []
    rng = np.random.default_rng([seed, building_index, 13])
    records = []
    busy: dict[int, list[tuple[float, float]]] = {}  # pair's module -> its faults' hours
    for _ in range(int(rng.poisson(faults_per_week / 2 * hours / 168.0))):
        kind = kinds[int(rng.integers(len(kinds)))]
        pair = plan.pairs[pairs[int(rng.integers(len(pairs)))]]
        first = start_hour + int(rng.integers(0, max(hours - 24, 1)))
        last = None if rng.random() < 0.3 else first + int(rng.integers(24, 24 * 6))
        last = None if last is None else min(last, start_hour + hours)
        params = _fit_to_duration(sensor_params(kind, rng), last - first if last else None)
        end = np.inf if last is None else last
        if any(first < b and a < end for a, b in busy.get(pair.module, [])):
            continue
        busy.setdefault(pair.module, []).append((first, end))
        records.append(
            FaultRecord(
                kind=cast(FaultKind, kind),
                building=building,
                start=hour_start(first),
                end=None if last is None else hour_start(last),
                where=Where(module_serial=pair.module, flat=pair.flat, riser=pair.riser),
                params=params,
                seed=seed,
            )
        )
    return records


@dataclass
class FaultEffects:
    """What the faults do during a stretch of hours, as arrays the layers apply."""

    meter_factor: np.ndarray  # [H, meters] registered / true
    riser_flow_factor: np.ndarray  # [H, risers]
    lost_m3: np.ndarray  # [H] water leaving after the building meter (leaks)
    drawn_share: np.ndarray  # [H] water drawn and not returned, of the building's flow
    tap_share: np.ndarray  # [H] heat a tapped-in consumer takes, of the flats' heat
    tap_weather: np.ndarray  # [H] same, of the design load x the heating degree
    tap_return_dt_k: np.ndarray  # [H] ΔT at which the tapped-in consumer returns its water
    tamper: np.ndarray  # [H, modules]
    dead: np.ndarray  # [H, modules]
    depletion: dict[int, tuple[int, int]]  # module position -> (first hour, dying hour)


def effects(
    faults: list[FaultRecord],
    hours: np.ndarray,
    plan: EquipmentPlan,
    risers: list[int],
) -> FaultEffects:
    """Turn the records into per-hour effects for ``hours``."""
    n_h = len(hours)
    meter_pos = {m.serial: i for i, m in enumerate(plan.meters)}
    module_pos = {m.serial: i for i, m in enumerate(plan.modules)}
    fx = FaultEffects(
        meter_factor=np.ones((n_h, len(plan.meters))),
        riser_flow_factor=np.ones((n_h, len(risers))),
        lost_m3=np.zeros(n_h),
        drawn_share=np.zeros(n_h),
        tap_share=np.zeros(n_h),
        tap_weather=np.zeros(n_h),
        tap_return_dt_k=np.full(n_h, 20.0),
        tamper=np.zeros((n_h, len(plan.modules)), dtype=bool),
        dead=np.zeros((n_h, len(plan.modules)), dtype=bool),
        depletion={},
    )
    for f in faults:
        on = f.active(hours)
        w = f.where
        if f.kind == "leak":
            fx.lost_m3 += f.leak_rate(hours)
        elif f.kind == "unauthorised_connection":
            shape = f.params.get("shape", "share")
            if shape == "draw":
                fx.drawn_share += on * f.params["share"]
            else:
                taken = fx.tap_weather if shape == "weather" else fx.tap_share
                taken += on * f.params["share"]
                fx.tap_return_dt_k[on] = f.params.get("return_dt_k", 20.0)
        elif f.kind == "clogged_riser":
            r = risers.index(int(w.riser or 0))
            fx.riser_flow_factor[:, r] = np.where(on, f.params["flow_factor"], 1.0)
        elif f.kind in ("magnet", "stuck_meter"):
            factor = f.params["factor"] if f.kind == "magnet" else 0.0
            col = meter_pos[str(w.meter_serial)]
            fx.meter_factor[:, col] = np.where(on, factor, fx.meter_factor[:, col])
            if f.kind == "magnet" and f.params["tamper_flag_raised"]:
                fx.tamper[:, module_pos[int(w.module_serial or 0)]] |= on
        elif f.kind in ("meter_drift", "building_meter_drift"):
            col = meter_pos[str(w.meter_serial)]
            fx.meter_factor[:, col] *= 1.0 + f.error(hours)
        elif f.kind == "dead_module":
            fx.dead[:, module_pos[int(w.module_serial or 0)]] |= on
        elif f.kind == "battery_depletion":
            pos = module_pos[int(w.module_serial or 0)]
            assert f.end is not None  # a depletion always ends with the module dying
            fx.dead[:, pos] |= hours >= hour_index(f.end)
            fx.depletion[pos] = (hour_index(f.start), hour_index(f.end))
    return fx
