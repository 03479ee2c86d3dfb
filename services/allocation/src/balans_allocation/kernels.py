"""numba kernels: hourly consumption from registers and per-flat heat, dense [hour, column].

Every kernel has a vectorised numpy twin with the same maths, outside the package
(``services/allocation/bench/kernels_numpy.py``); the tests hold them equal on random data,
the benchmark races them.

Conventions:
- registers: int64 [meter, boundary], ``MISSING_REGISTER`` (-1) where no reading arrived;
  boundary t is the top of the hour at the END of hour t-1, so hour i spans boundaries i, i+1;
- temperatures: int16 centi-degrees (the modules' resolution, a direct index into the
  property tables of :mod:`balans_physics.water`), ``MISSING_TEMP`` where absent;
- volumes and heat: float32 (m3, kWh), NaN where nothing can be said (no data at all);
- flags: uint16 bits of :class:`balans_allocation.flags.Flag`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba
import numpy as np

from balans_allocation.flags import (
    ABSURD_DT,
    BURST,
    ESTIMATED,
    GAP_INTERPOLATED,
    NEGATIVE_DT,
    NO_DATA,
    REGISTER_BACKWARDS,
    ROLLOVER,
    TEMP_MISSING,
    TEMP_OUT_OF_RANGE,
    VOLUME_SHARE_FALLBACK,
)

# Below this many cells (hours × columns) a call runs on one thread: waking the others
# costs 0.2-3 ms on a busy machine, against microseconds for a building's hour.
PARALLEL_MIN_CELLS = 200_000

MISSING_REGISTER = -1
MISSING_TEMP = np.int16(-32768)
MAX_TEMP_CENTI_C = 15_000  # 150 °C: above it a heating-circuit reading is a fault
REGISTER_MODULUS = 2**32  # the modules' pulse counters are 32-bit


@contextmanager
def threads_for(cells: int) -> Iterator[None]:
    """Run the kernels called inside on one thread for small inputs, on all otherwise."""
    previous = numba.get_num_threads()
    every: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
    numba.set_num_threads(1 if cells < PARALLEL_MIN_CELLS else every)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


@numba.njit(cache=True, parallel=True)
def consumption_from_registers(
    registers: np.ndarray,
    weight: np.ndarray,
    max_per_hour: np.ndarray,
    modulus: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Hourly consumption (registers × pulse weight) of each meter and its flags.

    Rules, per stretch between two known registers: a gap spreads the difference evenly
    (linear interpolation of the register, flagged); a decrease that a wrap at ``modulus``
    explains within the pipe's capacity is a rollover; any other decrease is a replaced or
    reset meter (the stretch counts 0, flagged); more than ``max_per_hour`` per hour is a
    burst (discarded: 0, flagged). Hours before the first or after the last known register
    are NaN with NO_DATA. Never negative.
    """
    meters, boundaries = registers.shape
    hours = boundaries - 1
    value = np.full((meters, hours), np.nan)
    flags = np.zeros((meters, hours), dtype=np.uint16)
    for m in numba.prange(meters):
        last = -1
        for j in range(boundaries):
            r = registers[m, j]
            if r == MISSING_REGISTER:
                continue
            if last >= 0:
                span = j - last
                delta = r - registers[m, last]
                capacity = max_per_hour[m] / weight[m] * span
                bits = 0
                if delta < 0:
                    if modulus > 0 and delta + modulus <= capacity:
                        delta += modulus
                        bits |= ROLLOVER
                    else:
                        delta = 0
                        bits |= REGISTER_BACKWARDS | ESTIMATED
                if delta > capacity:
                    delta = 0
                    bits |= BURST | ESTIMATED
                if span > 1:
                    bits |= GAP_INTERPOLATED | ESTIMATED
                per_hour = delta * weight[m] / span
                for i in range(last, j):
                    value[m, i] = per_hour
                    flags[m, i] = bits
            last = j
        for i in range(hours):
            if np.isnan(value[m, i]):
                flags[m, i] = NO_DATA | ESTIMATED
    return value, flags


@numba.njit(cache=True, parallel=True)
def group_mean_temperatures(
    t_flow: np.ndarray,
    t_return: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    building_flow: np.ndarray,
    building_return: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per hour and group (riser), the mean of the valid sensor pairs; where a group has
    none, the building's own pair. The estimate for a column whose pair is missing."""
    hours, columns = t_flow.shape
    fb_flow = np.empty((hours, n_groups), dtype=np.int16)
    fb_return = np.empty((hours, n_groups), dtype=np.int16)
    for h in numba.prange(hours):
        sum_f = np.zeros(n_groups)
        sum_r = np.zeros(n_groups)
        count = np.zeros(n_groups)
        for c in range(columns):
            tf = t_flow[h, c]
            tr = t_return[h, c]
            if 0 <= tr <= tf <= MAX_TEMP_CENTI_C:
                g = group[c]
                sum_f[g] += tf
                sum_r[g] += tr
                count[g] += 1.0
        for g in range(n_groups):
            if count[g] > 0:
                fb_flow[h, g] = np.int16(round(sum_f[g] / count[g]))
                fb_return[h, g] = np.int16(round(sum_r[g] / count[g]))
            else:
                fb_flow[h, g] = building_flow[h]
                fb_return[h, g] = building_return[h]
    return fb_flow, fb_return


@numba.njit(cache=True, inline="always")
def _valid(t: int) -> bool:
    return 0 <= t <= MAX_TEMP_CENTI_C


@numba.njit(cache=True, parallel=True, fastmath=True)
def heat_from_volume_into(
    volume: np.ndarray,
    t_flow: np.ndarray,
    t_return: np.ndarray,
    fb_flow: np.ndarray,
    fb_return: np.ndarray,
    group: np.ndarray,
    meter_in_flow: bool,
    rho: np.ndarray,
    enthalpy: np.ndarray,
    max_dt_centi: int,
    heat: np.ndarray,
    flags: np.ndarray,
) -> None:
    """:func:`heat_from_volume` writing into caller-owned ``heat`` and ``flags`` (reused
    buffers spare the page faults of fresh ones on large batches)."""
    hours, columns = volume.shape
    for h in numba.prange(hours):
        for c in range(columns):
            tf = t_flow[h, c]
            tr = t_return[h, c]
            bits = 0
            if not (_valid(tf) and _valid(tr)):
                if tf == MISSING_TEMP or tr == MISSING_TEMP:
                    bits |= TEMP_MISSING | ESTIMATED
                else:
                    bits |= TEMP_OUT_OF_RANGE | ESTIMATED
                tf = fb_flow[h, group[c]]
                tr = fb_return[h, group[c]]
            elif tf - tr > max_dt_centi:
                bits |= ABSURD_DT | ESTIMATED
                tf = fb_flow[h, group[c]]
                tr = fb_return[h, group[c]]
            if not (_valid(tf) and _valid(tr)):  # no estimate either: leave it to the method
                heat[h, c] = np.nan
                flags[h, c] = bits | NO_DATA | ESTIMATED
                continue
            if tr > tf:
                bits |= NEGATIVE_DT
                tr = tf
            tm = tf if meter_in_flow else tr
            heat[h, c] = volume[h, c] * rho[tm] * (enthalpy[tf] - enthalpy[tr])
            flags[h, c] = bits


def heat_from_volume(
    volume: np.ndarray,
    t_flow: np.ndarray,
    t_return: np.ndarray,
    fb_flow: np.ndarray,
    fb_return: np.ndarray,
    group: np.ndarray,
    meter_in_flow: bool,
    rho: np.ndarray,
    enthalpy: np.ndarray,
    max_dt_centi: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Heat (kWh) = V · ρ(θ meter) · (h(θf) − h(θr)) per [hour, column], with flags.

    A missing or out-of-range temperature, or a ΔT above ``max_dt_centi``, is replaced by
    the column's group estimate (``fb_*[hour, group]``) and flagged estimated; a negative
    ΔT (return warmer than flow) gives 0 heat, flagged. Without a usable estimate either,
    or with a NaN volume, the heat is NaN (NO_DATA) for the methodology to estimate.
    """
    heat = np.empty(volume.shape, dtype=np.float32)
    flags = np.empty(volume.shape, dtype=np.uint16)
    heat_from_volume_into(
        volume, t_flow, t_return, fb_flow, fb_return, group, meter_in_flow, rho, enthalpy,
        max_dt_centi, heat, flags,
    )  # fmt: skip
    return heat, flags


@numba.njit(cache=True, parallel=True)
def scatter_add(
    source: np.ndarray,
    source_flags: np.ndarray,
    link_source: np.ndarray,
    link_target: np.ndarray,
    link_weight: np.ndarray,
    n_targets: int,
) -> tuple[np.ndarray, np.ndarray]:
    """out[h, target[l]] += weight[l] · source[h, source[l]] and the flags OR-ed along.

    2a sums each flat's radiators (weight 1); 2b shares a riser's heat among its flats
    (weights summing to 1 per riser).
    """
    hours = source.shape[0]
    out = np.zeros((hours, n_targets), dtype=np.float32)
    out_flags = np.zeros((hours, n_targets), dtype=np.uint16)
    for h in numba.prange(hours):
        for lnk in range(link_source.size):
            s = link_source[lnk]
            t = link_target[lnk]
            out[h, t] += link_weight[lnk] * source[h, s]
            out_flags[h, t] |= source_flags[h, s]
    return out, out_flags


@numba.njit(cache=True, parallel=True)
def share_by_volume(
    building_kwh: np.ndarray, volume: np.ndarray, area: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Layout 1c: the building's heat of each hour in proportion to the flats' volumes;
    an hour with no volume at all is shared by area (flagged). A flat without data (NaN)
    stays NaN for the methodology to estimate."""
    hours, columns = volume.shape
    out = np.empty((hours, columns), dtype=np.float32)
    flags = np.zeros((hours, columns), dtype=np.uint16)
    total_area = area.sum()
    for h in numba.prange(hours):
        total = 0.0
        for c in range(columns):
            if not np.isnan(volume[h, c]):
                total += volume[h, c]
        if total > 0:
            for c in range(columns):
                out[h, c] = building_kwh[h] * volume[h, c] / total
        else:
            for c in range(columns):
                out[h, c] = building_kwh[h] * area[c] / total_area
                flags[h, c] = VOLUME_SHARE_FALLBACK | ESTIMATED
    return out, flags
