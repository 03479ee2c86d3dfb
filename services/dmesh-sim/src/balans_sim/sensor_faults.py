"""Faulty temperature sensors: what a DTI2 pair reads when one of its sensors is tampered
with or failing, scheduled with ground truth like every other fault.

Only the pairs a bill rests on are affected (a flat's pair in 1b, a radiator's in 2a, a
riser's in 2b), never the building's own. The shapes follow the physics of a sensor
clamped to a pipe:

- ``displaced_sensor``: the return sensor moved off its spot and half off the pipe reads
  part of the way to the room's temperature (``toward_room`` of the gap);
- ``swapped_sensors``: supply and return clamped the other way round, so ΔT is inverted;
- ``detached_sensor``: one sensor pulled off the pipe reads the room;
- ``sensor_drift``: one sensor gains an offset growing to ``offset_at_end_k`` (by the
  drift ``shape``, as a meter drift's error);
- ``frozen_sensor``: one sensor repeats the value it read the hour before it froze.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from balans_db.topology import EquipmentPlan
from balans_sim.climate import ROOM_C

SENSOR_FAULTS = (
    "displaced_sensor",
    "swapped_sensors",
    "detached_sensor",
    "sensor_drift",
    "frozen_sensor",
)
BILLED_POSITIONS = ("flat", "riser")  # not the building's own pair
SENSORS = ("supply", "return")


def billed_pairs(plan: EquipmentPlan) -> list[int]:
    """Positions in ``plan.pairs`` of the pairs a flat's or riser's heat rests on."""
    return [i for i, p in enumerate(plan.pairs) if p.position in BILLED_POSITIONS]


def sensor_params(kind: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw the parameters of a sensor fault of ``kind``."""
    if kind == "displaced_sensor":
        return {"sensor": "return", "toward_room": round(float(rng.uniform(0.3, 0.7)), 3)}
    if kind == "swapped_sensors":
        return {}
    sensor = SENSORS[int(rng.integers(2))]
    if kind == "sensor_drift":
        shape = ("ramp", "settle", "step")[int(rng.integers(3))]
        offset = round(float(rng.choice([-1, 1]) * rng.uniform(1.5, 5.0)), 2)
        out: dict[str, Any] = {"sensor": sensor, "offset_at_end_k": offset, "shape": shape}
        if shape == "settle":
            out["settle_hours"] = int(rng.integers(24, 97))
        return out
    return {"sensor": sensor}


def misread(
    faults: list[Any],
    hours: np.ndarray,
    plan: EquipmentPlan,
    supply_c: np.ndarray,
    return_c: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """[H, pairs] supply and return °C as the faulty sensors read them (frozen sensors
    aside: they repeat a reading, see :func:`freeze`). ``faults`` are FaultRecords."""
    supply, ret = supply_c.copy(), return_c.copy()
    pair_pos = {p.module: i for i, p in enumerate(plan.pairs)}
    for f in faults:
        if f.kind not in SENSOR_FAULTS or f.kind == "frozen_sensor":
            continue
        col = pair_pos[int(f.where.module_serial)]
        on = f.active(hours)
        if f.kind == "swapped_sensors":
            supply[on, col], ret[on, col] = return_c[on, col], supply_c[on, col]
            continue
        read = supply if f.params["sensor"] == "supply" else ret
        if f.kind == "displaced_sensor":
            read[:, col] += on * f.params["toward_room"] * (ROOM_C - read[:, col])
        elif f.kind == "detached_sensor":
            read[on, col] = ROOM_C
        elif f.kind == "sensor_drift":
            drift = f.model_copy(update={"params": {**f.params, "error_at_end": 1.0}})
            read[:, col] += f.params["offset_at_end_k"] * drift.error(hours)
    return supply, ret


def freeze(
    faults: list[Any],
    hours: np.ndarray,
    plan: EquipmentPlan,
    supply_centi: np.ndarray,
    return_centi: np.ndarray,
    frozen_at: dict[int, tuple[int, int]],
) -> None:
    """Make each frozen sensor repeat, in place, the reading of the hour before its fault
    began; ``frozen_at`` maps a fault's position in ``faults`` to that hour's (supply,
    return) centi-°C of its pair."""
    pair_pos = {p.module: i for i, p in enumerate(plan.pairs)}
    for i, f in enumerate(faults):
        if f.kind != "frozen_sensor":
            continue
        on = f.active(hours)
        if not on.any():
            continue
        col = pair_pos[int(f.where.module_serial)]
        supply, ret = frozen_at[i]
        if f.params["sensor"] == "supply":
            supply_centi[on, col] = supply
        else:
            return_centi[on, col] = ret
