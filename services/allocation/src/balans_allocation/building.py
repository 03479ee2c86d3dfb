"""What allocation needs to know about one building, loaded from the world tables."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import numpy as np

from balans_allocation.methodology import Methodology


@dataclass(frozen=True)
class Meter:
    id: int
    utility: str
    kind: str
    role: str
    pulse_weight: float
    unit: str
    pipe: str | None
    flat_id: int | None
    riser_id: int | None
    module_serial: int
    input: int


@dataclass(frozen=True)
class SensorPair:
    module_serial: int
    position: str
    flat_id: int | None
    riser_id: int | None
    radiator_id: int | None


@dataclass(frozen=True)
class Building:
    id: int
    layout: str
    methodology: Methodology
    flat_ids: np.ndarray  # int64, sorted: column order of every [hour, flat] array
    area_m2: np.ndarray  # float64, per flat
    meters: tuple[Meter, ...]
    pairs: tuple[SensorPair, ...]
    # (flat_id, riser_id, sections) of every radiator, for the 2b riser shares
    radiators: tuple[tuple[int, int, int], ...]

    def flat_index(self, flat_id: int) -> int:
        return int(np.searchsorted(self.flat_ids, flat_id))

    def heat_meters(self, role: str, kind: str) -> list[Meter]:
        return [m for m in self.meters if m.utility == "heat" and m.role == role and m.kind == kind]

    def pair(self, position: str) -> list[SensorPair]:
        return [p for p in self.pairs if p.position == position]


async def load_building(conn: asyncpg.Connection, building_id: int) -> Building | None:
    """The building with its flats, metered channels, sensor pairs and radiators."""
    row = await conn.fetchrow(
        "select id, layout, methodology from buildings where id = $1", building_id
    )
    if row is None:
        return None
    methodology = row["methodology"]
    if isinstance(methodology, str):
        methodology = Methodology.model_validate_json(methodology)
    else:
        methodology = Methodology.model_validate(methodology)
    flats = await conn.fetch(
        "select id, area_m2 from flats where building_id = $1 order by id", building_id
    )
    meters = await conn.fetch(
        """select m.id, m.utility, m.kind, m.role, m.pulse_weight, m.unit, m.pipe,
                  m.flat_id, m.riser_id, c.module_serial, c.input
           from meters m join channels c on c.meter_id = m.id
           where m.building_id = $1 order by m.id""",
        building_id,
    )
    pairs = await conn.fetch(
        """select module_serial, position, flat_id, riser_id, radiator_id
           from sensor_pairs where building_id = $1 order by module_serial""",
        building_id,
    )
    radiators = await conn.fetch(
        """select r.flat_id, r.riser_id, r.sections from radiators r
           join flats f on f.id = r.flat_id
           where f.building_id = $1 and r.riser_id is not null order by r.id""",
        building_id,
    )
    return Building(
        id=building_id,
        layout=row["layout"],
        methodology=methodology,
        flat_ids=np.array([f["id"] for f in flats], dtype=np.int64),
        area_m2=np.array([float(f["area_m2"]) for f in flats]),
        meters=tuple(
            Meter(**{**dict(m), "pulse_weight": float(m["pulse_weight"])}) for m in meters
        ),
        pairs=tuple(SensorPair(**dict(p)) for p in pairs),
        radiators=tuple((r["flat_id"], r["riser_id"], r["sections"]) for r in radiators),
    )
