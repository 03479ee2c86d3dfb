"""What the equipment registers: which true quantity each meter and sensor pair sees."""

from __future__ import annotations

import numpy as np

from balans_db.topology import EquipmentPlan, MeterPlan, PairPlan
from balans_sim.physics import BuildingModel, Truth

MICRO = 1_000_000  # registers accumulate in millionths of a pulse: exact integer sums
PAIR_DT_ERROR_MAX_K = 0.12  # DTI2 pair: |ΔT error| <= 0.12 °C (each sensor within ±0.06)


def _meter_source(model: BuildingModel, truth: Truth, m: MeterPlan) -> np.ndarray:
    if m.role == "building":
        return truth.building_kwh if m.utility == "heat" else truth.building_cold_water_m3
    if m.role == "riser":
        return truth.riser_m3[:, model.riser_numbers.index(int(m.riser or 0))]
    f = model.flat_pos[str(m.flat)]
    if m.utility == "heat":
        return truth.flat_kwh[:, f] if m.kind == "heat_meter" else truth.flat_m3[:, f]
    return truth.utilities[m.utility][:, f]


def true_quantities(model: BuildingModel, truth: Truth, plan: EquipmentPlan) -> np.ndarray:
    """[H, meters] true hourly quantity in each meter's unit."""
    return np.column_stack([_meter_source(model, truth, m) for m in plan.meters])


def _pair_source(model: BuildingModel, truth: Truth, p: PairPlan) -> tuple[np.ndarray, ...]:
    if p.position == "building":
        return truth.supply_c, truth.building_return_c
    if p.position == "riser":
        return truth.supply_c, truth.riser_return_c[:, model.riser_numbers.index(int(p.riser or 0))]
    if p.riser is None:
        f = model.flat_pos[str(p.flat)]
        return truth.flat_supply_c[:, f], truth.flat_return_c[:, f]
    r = model.radiators.index((str(p.flat), int(p.riser)))
    return truth.radiator_in_c[:, r], truth.radiator_out_c[:, r]


def true_temperatures(
    model: BuildingModel, truth: Truth, plan: EquipmentPlan
) -> tuple[np.ndarray, np.ndarray]:
    """[H, pairs] true hourly mean supply and return °C."""
    pairs = [_pair_source(model, truth, p) for p in plan.pairs]
    return np.column_stack([s for s, _ in pairs]), np.column_stack([r for _, r in pairs])


def pulse_weights(plan: EquipmentPlan) -> np.ndarray:
    return np.array([float(m.pulse_weight) for m in plan.meters])


def micro_pulses(registered: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Registered quantity as whole millionths of a pulse (quantised, non-negative)."""
    return np.asarray(np.rint(np.maximum(registered, 0.0) / weights * MICRO).astype(np.int64))
