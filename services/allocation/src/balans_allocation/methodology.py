"""The building methodology: how the building meter's heat is shared among its flats.

Per hour, in this order (docs/allocation.md states the same rules for residents):

1. A flat with no data at all is estimated from comparable flats: the measured flats'
   mean kWh per m2 of that hour times its area. If the estimated flats' area exceeds
   ``estimation_area_limit`` of the building (the German §9a HeizkostenV allows 25%),
   the hour is flagged REVIEW.
2. Plausibility cap: a flat measuring more than ``cap_factor`` × the building's mean
   kWh per m2 is capped there (CAP_HIT); the excess joins the common part.
3. Sharing: common = building − Σ flats. ``split="area"`` adds it by area,
   ``"consumption"`` by measured heat, ``"fixed"`` sets every total to
   ``consumption_share`` of the building by consumption plus the rest by area (the
   German 50-70% rule). If the building meter reads less than the flats (physically
   impossible: a fault), every flat is scaled down by building / Σ flats and the hour is
   flagged; no total goes negative.
4. Minimum charge: no flat pays less than ``min_charge_fraction`` of the area average;
   what it is raised by is taken from the others in proportion to their headroom.

Σ totals = building heat, to rounding, under every option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from balans_allocation.flags import Flag


class Methodology(BaseModel):
    """Per-building options, read from ``buildings.methodology`` (JSON)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    split: Literal["area", "consumption", "fixed"] = "area"
    consumption_share: float = Field(0.7, ge=0.5, le=0.7)
    min_charge_fraction: float = Field(0.0, ge=0.0, le=1.0)
    cap_factor: float = Field(5.0, gt=1.0)
    estimation_area_limit: float = Field(0.25, ge=0.0, le=1.0)
    riser_share: Literal["area", "radiators"] = "area"
    max_delta_t_k: float = Field(60.0, gt=0.0)
    pressure_bar: float = Field(16.0, gt=0.0, le=40.0)
    # readings of a meter whose verification expired (balans_allocation.verification)
    expired_meter_readings: Literal["measured", "estimated"] = "measured"


@dataclass(frozen=True)
class Allocation:
    """Per [hour, flat] figures and per-hour building figures (kWh)."""

    measured: np.ndarray
    common: np.ndarray
    adjustment: np.ndarray
    total: np.ndarray
    flags: np.ndarray
    building_kwh: np.ndarray
    estimated_area_fraction: np.ndarray
    building_flags: np.ndarray


def _estimate_missing(
    measured: np.ndarray, flags: np.ndarray, area: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    missing = np.isnan(measured)
    known_area = np.where(missing, 0.0, area).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity = np.where(known_area > 0, np.nansum(measured, axis=1) / known_area, 0.0)
    measured = np.where(missing, intensity[:, None] * area, measured)
    flags = flags | np.where(missing, Flag.NO_DATA | Flag.ESTIMATED, 0)
    return measured, flags


def _share(m: np.ndarray, building: np.ndarray, area: np.ndarray, rule: Methodology) -> tuple:
    """Totals before the minimum charge, and the per-hour 'building below flats' mask."""
    flats_sum = m.sum(axis=1)
    by_area = building[:, None] * area / area.sum()
    safe_sum = np.where(flats_sum > 0, flats_sum, 1.0)[:, None]
    by_consumption = np.where(flats_sum[:, None] > 0, building[:, None] * m / safe_sum, by_area)
    below = building < flats_sum
    if rule.split == "fixed":
        p = rule.consumption_share
        total = p * by_consumption + (1 - p) * by_area
    elif rule.split == "consumption":
        total = by_consumption
    else:
        total = m + (building - flats_sum)[:, None] * area / area.sum()
    return np.where(below[:, None], by_consumption, total), below


def _minimum_charge(
    total: np.ndarray, building: np.ndarray, area: np.ndarray, fraction: float
) -> np.ndarray:
    floor = fraction * building[:, None] * area / area.sum()
    raised = np.maximum(total, floor)
    deficit = (raised - total).sum(axis=1)
    headroom = np.where(total > floor, total - floor, 0.0)
    room = headroom.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        take = np.where(room[:, None] > 0, headroom * (deficit / room)[:, None], 0.0)
    return raised - take


def allocate(
    building_kwh: np.ndarray,
    measured: np.ndarray,
    flags: np.ndarray,
    area: np.ndarray,
    rule: Methodology,
) -> Allocation:
    """Apply the methodology to one building: ``measured`` is [hour, flat] kWh, NaN where a
    flat has no data; ``building_kwh`` NaN where the building meter has none (then the
    flats' sum stands in for it, flagged)."""
    flags = flags.astype(np.int64)
    m, flags = _estimate_missing(measured.astype(np.float64), flags, area)
    estimated = (flags & Flag.ESTIMATED) != 0
    estimated_fraction = (estimated * area).sum(axis=1) / area.sum()
    review = estimated_fraction > rule.estimation_area_limit
    building_flags = np.where(review, int(Flag.REVIEW), 0)
    no_building = np.isnan(building_kwh)
    building = np.where(no_building, m.sum(axis=1), building_kwh)
    building_flags |= np.where(no_building, Flag.NO_DATA | Flag.ESTIMATED, 0)

    cap = rule.cap_factor * building[:, None] * area / area.sum()
    capped = (m > cap) & (building[:, None] > 0)
    m = np.where(capped, cap, m)
    flags |= np.where(capped, int(Flag.CAP_HIT), 0)
    building_flags |= np.where(capped.any(axis=1), int(Flag.CAP_HIT), 0)

    shared, below = _share(m, building, area, rule)
    building_flags |= np.where(below, int(Flag.BUILDING_BELOW_FLATS), 0)
    flags |= np.where(below[:, None], int(Flag.BUILDING_BELOW_FLATS), 0)
    total = _minimum_charge(shared, building, area, rule.min_charge_fraction)
    adjustment = total - shared
    flags |= np.where(adjustment > 1e-12, int(Flag.MIN_CHARGE), 0)
    flags |= np.where(review[:, None], int(Flag.REVIEW), 0)
    return Allocation(
        measured=m,
        common=shared - m,
        adjustment=adjustment,
        total=total,
        flags=flags,
        building_kwh=building,
        estimated_area_fraction=estimated_fraction,
        building_flags=building_flags,
    )
