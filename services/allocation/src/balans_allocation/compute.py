"""One building over a range of hours: registers -> consumption -> per-flat heat -> method.

Each piping layout (docs/domain.md) turns the building's consumption and temperatures into a
measured heat per [hour, flat]; the methodology then shares the building meter's total.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import asyncpg
import numpy as np

from balans_allocation import kernels, sensor_estimates, sensor_store
from balans_allocation.building import Building, Meter
from balans_allocation.crosscheck import disagreeing_hours
from balans_allocation.flags import Flag
from balans_allocation.methodology import Allocation, allocate
from balans_allocation.readings import (
    HOUR,
    RegisterWindow,
    TemperatureWindow,
    load_register_windows,
    load_temperature_windows,
)
from balans_allocation.recent import Recent
from balans_allocation.sensor_estimates import SensorEstimate
from balans_allocation.verification import apply_rule
from balans_physics.water import property_tables

# The most a meter of each unit and role can pass in an hour: more is a pulse burst.
# m3: a DN15 flat connection carries ~3 m3/h, a riser DN25 ~10, a substation far more.
CAPACITY_PER_HOUR = {
    ("m3", "flat"): 3.0,
    ("m3", "riser"): 10.0,
    ("m3", "common"): 30.0,
    ("m3", "building"): 200.0,
    ("m3", "branch"): 2000.0,
    ("kWh", "flat"): 100.0,
    ("kWh", "riser"): 500.0,
    ("kWh", "common"): 1000.0,
    ("kWh", "building"): 10_000.0,
    ("kWh", "branch"): 100_000.0,
}

METHODS = {
    "1a": "flat heat meter (kWh per pulse)",
    "1b": "flat volume × k × ΔT (distributor)",
    "1c": "building heat shared by flat volumes",
    "2a": "riser flow × flat ΔT × k (per-flat distributors)",
    "2b": "riser heat shared among its flats",
}


@dataclass(frozen=True)
class Consumption:
    """Hourly consumption of every metered channel of the building."""

    meters: tuple[Meter, ...]
    value: np.ndarray  # float64 [meter, hour], NaN = no data; 0 where not in service
    flags: np.ndarray  # uint16 [meter, hour]
    in_service: np.ndarray  # bool [meter, hour]: the hour overlaps the meter's channel period

    @functools.cached_property
    def row_of(self) -> dict[int, int]:
        """Row of each meter id."""
        return {m.id: i for i, m in enumerate(self.meters)}

    def of(self, meters: list[Meter]) -> tuple[np.ndarray, np.ndarray]:
        """[hour, len(meters)] values and flags of these meters."""
        rows = [self.row_of[m.id] for m in meters]
        return self.value[rows].T.astype(np.float32), self.flags[rows].T

    def summed(self, positions: list[list[Meter]]) -> tuple[np.ndarray, np.ndarray]:
        """[hour, len(positions)] values and flags of positions, each the meters that
        followed one another on it (a meter exchange): each counts only while in service."""
        value = np.zeros((len(positions), self.value.shape[1]))
        flags = np.zeros((len(positions), self.value.shape[1]), dtype=np.uint16)
        for i, meters in enumerate(positions):
            for m in meters:
                value[i] += self.value[self.row_of[m.id]]
                flags[i] |= self.flags[self.row_of[m.id]]
        return value.T.astype(np.float32), flags.T


@dataclass(frozen=True)
class Trail:
    """What produced each flat's measured heat (the explanation trail), [hour, flat]."""

    volume_m3: np.ndarray
    delta_t_k: np.ndarray


@dataclass(frozen=True)
class Inputs:
    building: Building
    consumption: Consumption
    pair_serials: list[int]
    t_flow: np.ndarray  # int16 [hour, pair]
    t_return: np.ndarray
    rho: np.ndarray
    enthalpy: np.ndarray

    @property
    def hours(self) -> int:
        return self.t_flow.shape[0]

    @property
    def flats(self) -> int:
        return self.building.flat_ids.size

    def temperatures(self, serials: list[int]) -> tuple[np.ndarray, np.ndarray]:
        cols = [self.pair_serials.index(s) for s in serials]
        return self.t_flow[:, cols], self.t_return[:, cols]

    def building_temperatures(self) -> tuple[np.ndarray, np.ndarray]:
        pairs = self.building.pair("building")
        if not pairs:
            missing = np.full(self.hours, kernels.MISSING_TEMP, dtype=np.int16)
            return missing, missing.copy()
        tf, tr = self.temperatures([pairs[0].module_serial])
        return tf[:, 0].copy(), tr[:, 0].copy()

    def empty(self) -> np.ndarray:
        return np.full((self.hours, self.flats), np.nan)


@dataclass(frozen=True)
class BuildingResult:
    start: datetime
    consumption: Consumption
    allocation: Allocation
    trail: Trail
    method: str
    has_data: np.ndarray  # bool [hour]: the building meter or some flat has data
    cpu_s: float = 0.0  # the process's CPU seconds of the computation (its parallel kernels too)

    def hours_with_data(self) -> list[int]:
        return [int(h) for h in np.flatnonzero(self.has_data)]


def _heat(
    inputs: Inputs, volume: np.ndarray, serials: list[int], group: np.ndarray, in_flow: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heat and flags per [hour, column] from volumes and the columns' sensor pairs, with
    missing pairs estimated from the same group (riser) or the building's pair; and ΔT (K)."""
    tf, tr = inputs.temperatures(serials)
    b_tf, b_tr = inputs.building_temperatures()
    n_groups = int(group.max()) + 1 if group.size else 1
    fb_f, fb_r = kernels.group_mean_temperatures(tf, tr, group, n_groups, b_tf, b_tr)
    max_dt = int(inputs.building.methodology.max_delta_t_k * 100)
    heat, flags = kernels.heat_from_volume(
        volume, tf, tr, fb_f, fb_r, group, in_flow, inputs.rho, inputs.enthalpy, max_dt
    )
    valid = (tf >= 0) & (tr >= 0) & (tf <= kernels.MAX_TEMP_CENTI_C)
    delta_t = np.where(valid, (tf.astype(np.float64) - tr) / 100.0, np.nan)
    return heat, flags, delta_t


def _in_flow(meters: list[Meter]) -> bool:
    return bool(meters) and meters[0].pipe == "flow"


def _layout_1a(inputs: Inputs) -> tuple[np.ndarray, np.ndarray, Trail]:
    meters = inputs.building.heat_meters("flat", "heat_meter")
    value, flags = inputs.consumption.of(meters)
    measured, mflags = _by_flat(inputs, meters, value, flags)
    return measured, mflags, Trail(inputs.empty(), inputs.empty())


def _by_flat(
    inputs: Inputs, meters: list[Meter], value: np.ndarray, flags: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Sum per-column values into their flats (NaN if a flat has a meter without data,
    and for flats with no meter at all)."""
    targets = np.array([inputs.building.flat_index(m.flat_id or 0) for m in meters], np.int32)
    measured, mflags = kernels.scatter_add(
        value, flags, np.arange(len(meters), dtype=np.int32), targets,
        np.ones(len(meters)), inputs.flats,
    )  # fmt: skip
    has_meter = np.zeros(inputs.flats, dtype=bool)
    has_meter[targets] = True
    return np.where(has_meter, measured, np.nan), mflags


def _layout_1b(inputs: Inputs) -> tuple[np.ndarray, np.ndarray, Trail]:
    pairs = {p.flat_id: p.module_serial for p in inputs.building.pair("flat")}
    meters = [m for m in inputs.building.heat_meters("flat", "flow_meter") if m.flat_id in pairs]
    volume, vflags = inputs.consumption.of(meters)
    group = np.zeros(len(meters), dtype=np.int32)
    serials = [pairs[m.flat_id] for m in meters]
    heat, hflags, delta_t = _heat(inputs, volume, serials, group, _in_flow(meters))
    measured, mflags = _by_flat(inputs, meters, heat, hflags | vflags)
    trail_v, _ = _by_flat(inputs, meters, volume, vflags)
    trail_dt, _ = _by_flat(inputs, meters, delta_t.astype(np.float32), vflags)
    return measured, mflags, Trail(trail_v, trail_dt)


def _layout_1c(inputs: Inputs, building_kwh: np.ndarray) -> tuple[np.ndarray, np.ndarray, Trail]:
    meters = inputs.building.heat_meters("flat", "flow_meter")
    volume, vflags = inputs.consumption.of(meters)
    flat_volume, flat_vflags = _by_flat(inputs, meters, volume, vflags)
    area = inputs.building.area_m2
    shared, sflags = kernels.share_by_volume(building_kwh, flat_volume.astype(np.float32), area)
    return shared, sflags | flat_vflags, Trail(flat_volume, inputs.empty())


def _risers(inputs: Inputs, with_pair: set[int] | None = None) -> list[list[Meter]]:
    """The riser flow meters by riser (several when one replaced another), in order of
    first appearance; only risers in ``with_pair`` if given."""
    by_riser: dict[int, list[Meter]] = {}
    for m in inputs.building.heat_meters("riser", "flow_meter"):
        if with_pair is None or m.riser_id in with_pair:
            by_riser.setdefault(m.riser_id or 0, []).append(m)
    return list(by_riser.values())


def _layout_2a(inputs: Inputs) -> tuple[np.ndarray, np.ndarray, Trail]:
    positions = _risers(inputs)
    meters = [p[-1] for p in positions]
    riser_col = {m.riser_id or 0: i for i, m in enumerate(meters)}
    links = [p for p in inputs.building.pair("flat") if p.riser_id in riser_col]
    riser_volume, riser_flags = inputs.consumption.summed(positions)
    link_riser = np.array([riser_col[p.riser_id or 0] for p in links], dtype=np.int32)
    volume = riser_volume[:, link_riser]
    serials = [p.module_serial for p in links]
    heat, hflags, delta_t = _heat(inputs, volume, serials, link_riser, _in_flow(meters))
    if not _in_flow(meters):
        heat = _riser_meter_density(inputs, heat, serials, link_riser, len(meters))
    targets = np.array([inputs.building.flat_index(p.flat_id or 0) for p in links], np.int32)
    ones = np.ones(len(links))
    link_ids = np.arange(len(links), dtype=np.int32)
    flags = hflags | riser_flags[:, link_riser]
    measured, mflags = kernels.scatter_add(heat, flags, link_ids, targets, ones, inputs.flats)
    trail_v, _ = kernels.scatter_add(volume, flags, link_ids, targets, ones, inputs.flats)
    per_flat = np.bincount(targets, minlength=inputs.flats)
    dt_sum, _ = kernels.scatter_add(
        np.nan_to_num(delta_t).astype(np.float32), flags, link_ids, targets, ones, inputs.flats
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        trail_dt = np.where(per_flat > 0, dt_sum / per_flat, np.nan)
    has = per_flat > 0
    return np.where(has, measured, np.nan), mflags, Trail(np.where(has, trail_v, np.nan), trail_dt)


def _riser_meter_density(
    inputs: Inputs, heat: np.ndarray, serials: list[int], link_riser: np.ndarray, risers: int
) -> np.ndarray:
    """2a with the riser meter in the return: the water is weighed at the riser's exit,
    estimated as the coldest valid radiator outlet on the riser that hour, not at each
    radiator's outlet (up to 1% more mass at the bottom of a riser)."""
    _, t_out = inputs.temperatures(serials)
    valid = (t_out >= 0) & (t_out <= kernels.MAX_TEMP_CENTI_C)
    coldest = np.full((inputs.hours, risers), kernels.MAX_TEMP_CENTI_C + 1, dtype=np.int32)
    for link, riser in enumerate(link_riser):
        coldest[:, riser] = np.where(
            valid[:, link], np.minimum(coldest[:, riser], t_out[:, link]), coldest[:, riser]
        )
    at_meter = coldest[:, link_riser]
    usable = valid & (at_meter <= kernels.MAX_TEMP_CENTI_C)
    with np.errstate(invalid="ignore"):
        ratio = inputs.rho[np.where(usable, at_meter, 0)] / inputs.rho[np.where(usable, t_out, 0)]
    return np.where(usable, heat * ratio, heat).astype(np.float32)


def _riser_weights(inputs: Inputs, riser_col: dict[int, int]) -> tuple[np.ndarray, ...]:
    """Links (riser column, flat column, weight) sharing each riser's heat by area or by
    radiator sections, weights summing to 1 per riser."""
    b = inputs.building
    rads = [r for r in b.radiators if r[1] in riser_col]
    risers_of_flat: dict[int, int] = {}
    for flat_id, _, _ in rads:
        risers_of_flat[flat_id] = risers_of_flat.get(flat_id, 0) + 1
    src = np.array([riser_col[r[1]] for r in rads], dtype=np.int32)
    dst = np.array([b.flat_index(r[0]) for r in rads], dtype=np.int32)
    if b.methodology.riser_share == "radiators":
        raw = np.array([float(r[2]) for r in rads])
    else:
        raw = np.array([b.area_m2[b.flat_index(r[0])] / risers_of_flat[r[0]] for r in rads])
    per_riser = np.bincount(src, weights=raw, minlength=len(riser_col))
    return src, dst, raw / per_riser[src]


def _layout_2b(inputs: Inputs) -> tuple[np.ndarray, np.ndarray, Trail]:
    pairs = {p.riser_id: p.module_serial for p in inputs.building.pair("riser")}
    positions = _risers(inputs, {r for r in pairs if r is not None})
    meters = [p[-1] for p in positions]
    riser_col = {m.riser_id or 0: i for i, m in enumerate(meters)}
    volume, vflags = inputs.consumption.summed(positions)
    group = np.zeros(len(meters), dtype=np.int32)
    serials = [pairs[m.riser_id] for m in meters]
    heat, hflags, _ = _heat(inputs, volume, serials, group, _in_flow(meters))
    src, dst, weight = _riser_weights(inputs, riser_col)
    flags = hflags | vflags
    measured, mflags = kernels.scatter_add(heat, flags, src, dst, weight, inputs.flats)
    trail_v, _ = kernels.scatter_add(volume, flags, src, dst, weight, inputs.flats)
    has = np.zeros(inputs.flats, dtype=bool)
    has[dst] = True
    return np.where(has, measured, np.nan), mflags, Trail(trail_v, inputs.empty())


LAYOUTS: dict[str, Callable[[Inputs], tuple[np.ndarray, np.ndarray, Trail]]] = {
    "1a": _layout_1a,
    "1b": _layout_1b,
    "2a": _layout_2a,
    "2b": _layout_2b,
}


def _cross_check(inputs: Inputs) -> None:
    """Flag the hours of every heat meter whose module also counts its volume and carries
    its sensor pair, where its own kWh disagree with V·k·Δθ beyond its class."""
    pairs = {p.module_serial for p in inputs.building.pairs}
    meters = inputs.building.meters
    for heat_meter in (m for m in meters if m.kind == "heat_meter" and m.module_serial in pairs):
        volume_meter = next(
            (
                m
                for m in meters
                if m.kind == "flow_meter" and m.module_serial == heat_meter.module_serial
            ),
            None,
        )
        if volume_meter is None:
            continue
        volume, _ = inputs.consumption.of([volume_meter])
        reported, _ = inputs.consumption.of([heat_meter])
        group = np.zeros(1, dtype=np.int32)
        heat, _, delta_t = _heat(
            inputs, volume, [heat_meter.module_serial], group, volume_meter.pipe == "flow"
        )
        pulse_kwh = float(np.nanmedian(heat[:, 0] / volume[:, 0])) * volume_meter.pulse_weight
        bad = disagreeing_hours(
            reported[:, 0], heat[:, 0], delta_t[:, 0], heat_meter.pulse_weight,
            pulse_kwh if np.isfinite(pulse_kwh) else 0.0,
        )  # fmt: skip
        row = inputs.consumption.row_of[heat_meter.id]
        inputs.consumption.flags[row, bad] |= np.uint16(Flag.CROSSCHECK_FAILED)


def _building_kwh(inputs: Inputs) -> np.ndarray:
    meters = inputs.building.heat_meters("building", "heat_meter")
    if not meters:
        return np.full(inputs.hours, np.nan)
    value, _ = inputs.consumption.of(meters)
    return value.astype(np.float64).sum(axis=1)  # NaN if any building meter lacks data


@dataclass(frozen=True)
class Job:
    """One building's range of hours [start, start + hours) to compute."""

    building: Building
    start: datetime
    hours: int


async def compute_buildings(
    conn: asyncpg.Connection,
    jobs: Sequence[Job],
    lookaround: int,
    known: dict[int, Recent] | None = None,
) -> list[BuildingResult]:
    """Consumption of every meter and the allocation of every job, the readings of all
    jobs loaded in one query per kind (the registers taken from ``known`` where its rows
    settle a window).

    The nearest register up to ``lookaround`` hours either side is read, so gaps at the
    edges of the range interpolate between the same anchors as inside a longer run.
    """
    windows = [
        RegisterWindow(
            j.building.meters,
            j.start - lookaround * HOUR,
            j.hours + 2 * lookaround + 1,
            edge=lookaround,
        )
        for j in jobs
    ]
    settled = [
        known[w_job.building.id].window(w.start, w.boundaries, w.edge)
        if known and w_job.building.id in known
        else None
        for w_job, w in zip(jobs, windows, strict=True)
    ]
    loaded = iter(
        await load_register_windows(
            conn, [w for w, s in zip(windows, settled, strict=True) if s is None]
        )
    )
    registers = [s if s is not None else next(loaded) for s in settled]
    temperatures = await load_temperature_windows(
        conn,
        [
            TemperatureWindow([p.module_serial for p in j.building.pairs], j.start, j.hours)
            for j in jobs
        ],
    )
    estimates = await sensor_store.of_windows(
        conn, [(j.building.id, j.start, j.start + j.hours * HOUR) for j in jobs]
    )
    results = []
    for job, r, (t_flow, t_return) in zip(jobs, registers, temperatures, strict=True):
        # the other shares of the batch (their own connections) send their next statement
        # between two buildings, so PostgreSQL works on them while this one computes
        await asyncio.sleep(0)
        results.append(
            _compute(job, lookaround, r, t_flow, t_return, estimates.get(job.building.id, []))
        )
    return results


async def compute_building(
    conn: asyncpg.Connection, building: Building, start: datetime, hours: int, lookaround: int
) -> BuildingResult:
    """:func:`compute_buildings` for one building."""
    (result,) = await compute_buildings(conn, [Job(building, start, hours)], lookaround)
    return result


def _compute(
    job: Job,
    lookaround: int,
    registers: np.ndarray,
    t_flow: np.ndarray,
    t_return: np.ndarray,
    estimates: Sequence[SensorEstimate] = (),
) -> BuildingResult:
    cells = registers.size + job.hours * (job.building.flat_ids.size + t_flow.shape[1])
    started = time.process_time()  # every thread's: the kernels' parallel loops count
    with kernels.threads_for(cells):
        result = _compute_threaded(job, lookaround, registers, t_flow, t_return, estimates)
    return replace(result, cpu_s=time.process_time() - started)


def _sensor_fault_flags(
    building: Building, estimates: Sequence[SensorEstimate], masks: list[np.ndarray], hours: int
) -> np.ndarray:
    """int64 [hour, flat]: SENSOR_FAULT | ESTIMATED where a flat's heat rests on a pair
    whose temperatures were estimated that hour."""
    flags = np.zeros((hours, building.flat_ids.size), dtype=np.int64)
    known = set(building.flat_ids.tolist())
    for e, on in zip(estimates, masks, strict=True):
        cols = [building.flat_index(f) for f in e.flat_ids if f in known]
        flags[np.ix_(on, cols)] |= int(Flag.SENSOR_FAULT | Flag.ESTIMATED)
    return flags


def _in_service(meters: Sequence[Meter], start: datetime, hours: int) -> np.ndarray:
    """bool [meter, hour]: the hours each meter is on its channel. Outside them a meter
    counts 0 without flags, so the meters that followed one another on a flat's or
    riser's input add up to one continuous series (docs/provisioning.md)."""
    if not any(m.valid_from or m.valid_to for m in meters):
        return np.ones((len(meters), hours), dtype=bool)
    return np.stack([m.in_service(start, hours) for m in meters])


def _compute_threaded(
    job: Job,
    lookaround: int,
    registers: np.ndarray,
    t_flow: np.ndarray,
    t_return: np.ndarray,
    estimates: Sequence[SensorEstimate],
) -> BuildingResult:
    building, start, hours = job.building, job.start, job.hours
    weight = np.array([m.pulse_weight for m in building.meters])
    capacity = np.array([CAPACITY_PER_HOUR[(m.unit, m.role)] for m in building.meters])
    value, flags = kernels.consumption_from_registers(
        registers, weight, capacity, kernels.REGISTER_MODULUS
    )
    window = slice(lookaround, lookaround + hours)
    in_service = _in_service(building.meters, start, hours)
    consumption = Consumption(
        building.meters,
        apply_rule(
            np.where(in_service, value[:, window], 0.0),
            building.meters,
            start,
            building.methodology,
        ),
        np.where(in_service, flags[:, window], 0).astype(np.uint16),
        in_service,
    )
    serials = [p.module_serial for p in building.pairs]
    t_flow, t_return, estimated = sensor_estimates.apply(
        estimates, serials, t_flow, t_return, start
    )
    rho, enthalpy = property_tables(building.methodology.pressure_bar)
    inputs = Inputs(building, consumption, serials, t_flow, t_return, rho, enthalpy)
    _cross_check(inputs)
    building_kwh = _building_kwh(inputs)
    if building.layout == "1c":
        measured, mflags, trail = _layout_1c(inputs, building_kwh)
    else:
        measured, mflags, trail = LAYOUTS[building.layout](inputs)
    if estimates:
        mflags = mflags.astype(np.int64) | _sensor_fault_flags(
            building, estimates, estimated, hours
        )
    has_data = ~np.isnan(building_kwh) | ~np.isnan(measured).all(axis=1)
    result = allocate(building_kwh, measured, mflags, building.area_m2, building.methodology)
    return BuildingResult(start, consumption, result, trail, METHODS[building.layout], has_data)
