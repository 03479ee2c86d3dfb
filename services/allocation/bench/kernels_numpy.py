"""The maths of :mod:`balans_allocation.kernels`, vectorised in plain numpy.

Not used by the service, so it lives beside the benchmark: it is the independent second
implementation the tests compare the numba kernels with, and the baseline
``make bench-allocation`` races them against.
"""

from __future__ import annotations

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
from balans_allocation.kernels import MAX_TEMP_CENTI_C, MISSING_REGISTER, MISSING_TEMP


def consumption_from_registers(
    registers: np.ndarray, weight: np.ndarray, max_per_hour: np.ndarray, modulus: int
) -> tuple[np.ndarray, np.ndarray]:
    meters, boundaries = registers.shape
    hours = boundaries - 1
    value = np.full((meters, hours), np.nan)
    flags = np.zeros((meters, hours), dtype=np.uint16)
    known = registers != MISSING_REGISTER
    for m in range(meters):
        idx = np.flatnonzero(known[m])
        if idx.size < 2:
            continue
        span = np.diff(idx)
        delta = np.diff(registers[m, idx]).astype(np.float64)
        capacity = max_per_hour[m] / weight[m] * span
        bits = np.where(span > 1, GAP_INTERPOLATED | ESTIMATED, 0)
        wraps = (delta < 0) & (modulus > 0) & (delta + modulus <= capacity)
        resets = (delta < 0) & ~wraps
        delta = np.where(wraps, delta + modulus, np.where(resets, 0.0, delta))
        bits |= np.where(wraps, ROLLOVER, 0) | np.where(resets, REGISTER_BACKWARDS | ESTIMATED, 0)
        bursts = delta > capacity
        delta = np.where(bursts, 0.0, delta)
        bits |= np.where(bursts, BURST | ESTIMATED, 0)
        stretch = np.repeat(np.arange(span.size), span)
        value[m, idx[0] : idx[-1]] = (delta * weight[m] / span)[stretch]
        flags[m, idx[0] : idx[-1]] = bits[stretch]
    flags[np.isnan(value)] = NO_DATA | ESTIMATED
    return value, flags


def group_mean_temperatures(
    t_flow: np.ndarray,
    t_return: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    building_flow: np.ndarray,
    building_return: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    valid = (t_return >= 0) & (t_return <= t_flow) & (t_flow <= MAX_TEMP_CENTI_C)
    onehot = np.zeros((t_flow.shape[1], n_groups))
    onehot[np.arange(group.size), group] = 1.0
    count = valid @ onehot
    sum_f = np.where(valid, t_flow, 0).astype(np.float64) @ onehot
    sum_r = np.where(valid, t_return, 0).astype(np.float64) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        fb_flow = np.where(count > 0, np.round(sum_f / count), building_flow[:, None])
        fb_return = np.where(count > 0, np.round(sum_r / count), building_return[:, None])
    return fb_flow.astype(np.int16), fb_return.astype(np.int16)


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
    tf = t_flow.astype(np.int32)
    tr = t_return.astype(np.int32)
    valid = (tf >= 0) & (tf <= MAX_TEMP_CENTI_C) & (tr >= 0) & (tr <= MAX_TEMP_CENTI_C)
    missing = (tf == MISSING_TEMP) | (tr == MISSING_TEMP)
    absurd = valid & (tf - tr > max_dt_centi)
    replace = ~valid | absurd
    flags = np.where(~valid & missing, TEMP_MISSING | ESTIMATED, 0)
    flags |= np.where(~valid & ~missing, TEMP_OUT_OF_RANGE | ESTIMATED, 0)
    flags |= np.where(absurd, ABSURD_DT | ESTIMATED, 0)
    tf = np.where(replace, fb_flow[:, group], tf)
    tr = np.where(replace, fb_return[:, group], tr)
    usable = (tf >= 0) & (tf <= MAX_TEMP_CENTI_C) & (tr >= 0) & (tr <= MAX_TEMP_CENTI_C)
    tf = np.where(usable, tf, 0)
    tr = np.where(usable, tr, 0)
    negative = tr > tf
    flags |= np.where(negative, NEGATIVE_DT, 0)
    tr = np.where(negative, tf, tr)
    tm = tf if meter_in_flow else tr
    heat = np.where(usable, volume * rho[tm] * (enthalpy[tf] - enthalpy[tr]), np.nan)
    flags = np.where(usable, flags, flags | NO_DATA | ESTIMATED)
    return heat.astype(np.float32), flags.astype(np.uint16)


def scatter_add(
    source: np.ndarray,
    source_flags: np.ndarray,
    link_source: np.ndarray,
    link_target: np.ndarray,
    link_weight: np.ndarray,
    n_targets: int,
) -> tuple[np.ndarray, np.ndarray]:
    hours = source.shape[0]
    out = np.zeros((n_targets, hours))
    np.add.at(out, link_target, (source[:, link_source] * link_weight).T)
    out_flags = np.zeros((n_targets, hours), dtype=np.uint16)
    np.bitwise_or.at(out_flags, link_target, source_flags[:, link_source].T)
    return out.T.astype(np.float32), out_flags.T.copy()


def share_by_volume(
    building_kwh: np.ndarray, volume: np.ndarray, area: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    total = np.nansum(volume, axis=1)
    has_volume = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        by_volume = building_kwh[:, None] * volume / total[:, None]
    by_area = building_kwh[:, None] * area[None, :] / area.sum()
    out = np.where(has_volume[:, None], by_volume, by_area)
    flags = np.where(has_volume[:, None], 0, VOLUME_SHARE_FALLBACK | ESTIMATED)
    flags = np.broadcast_to(flags, volume.shape)
    return out.astype(np.float32), flags.astype(np.uint16)
