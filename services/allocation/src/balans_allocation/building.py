"""What allocation needs to know about one building, loaded from the world tables."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import NamedTuple

import asyncpg
import numpy as np

from balans_allocation.methodology import Methodology
from balans_db.queries import world
from balans_db.queries.ingest import ChannelPeriod

HOUR = timedelta(hours=1)


class Meter(NamedTuple):
    """A metered channel (a named tuple: a batch builds thousands, and a frozen
    dataclass's ``__init__`` cost about five times as much)."""

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
    # the channel period (docs/provisioning.md, "Meter exchange"): on its input for
    # [valid_from, valid_to), the module's counts at the ends where an exchange gives them
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    count_at_start: int | None = None
    count_at_end: int | None = None
    verification_due_on: date | None = None  # balans_allocation.verification

    @property
    def period(self) -> ChannelPeriod:
        return ChannelPeriod(self.valid_from, self.valid_to, self.count_at_start, self.count_at_end)

    def in_service(self, start: datetime, hours: int) -> np.ndarray:
        """bool [hour]: whether hour i of [start + i h, start + (i+1) h) overlaps the period."""
        index = np.arange(hours)
        ok = np.ones(hours, dtype=bool)
        if self.valid_from is not None:
            ok &= index + 1 > (self.valid_from - start) / HOUR
        if self.valid_to is not None:
            ok &= index < (self.valid_to - start) / HOUR
        return ok


class SensorPair(NamedTuple):
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

    @functools.cached_property
    def _flat_columns(self) -> dict[int, int]:
        return {flat_id: i for i, flat_id in enumerate(self.flat_ids.tolist())}

    def flat_index(self, flat_id: int) -> int:
        """The column of ``flat_id`` (of an unknown id: where it would be inserted)."""
        found = self._flat_columns.get(flat_id)
        return found if found is not None else int(np.searchsorted(self.flat_ids, flat_id))

    def heat_meters(self, role: str, kind: str) -> list[Meter]:
        return [m for m in self.meters if m.utility == "heat" and m.role == role and m.kind == kind]

    def pair(self, position: str) -> list[SensorPair]:
        return [p for p in self.pairs if p.position == position]


async def load_buildings(
    conn: asyncpg.Connection, building_ids: Sequence[int]
) -> dict[int, Building]:
    """The buildings that exist among ``building_ids``, with their flats, metered channels,
    sensor pairs and radiators: five queries however many buildings."""
    ids = sorted(set(building_ids))
    rows = await world.buildings_by_id(conn, ids)
    flats = _values_by_building(await world.flats_of(conn, ids), ("id", "area_m2"))
    meters = _values_by_building(await world.metered_channels_of(conn, ids), Meter._fields)
    pairs = _values_by_building(await world.sensor_pairs_of(conn, ids), SensorPair._fields)
    radiators = _values_by_building(
        await world.riser_radiators_of(conn, ids), ("flat_id", "riser_id", "sections")
    )
    return {
        row["id"]: Building(
            id=row["id"],
            layout=row["layout"],
            methodology=_methodology(row["methodology"]),
            flat_ids=np.array([f[0] for f in flats.get(row["id"], [])], dtype=np.int64),
            area_m2=np.array([float(f[1]) for f in flats.get(row["id"], [])]),
            meters=tuple(
                Meter._make((*m[:4], float(m[4]), *m[5:])) for m in meters.get(row["id"], [])
            ),
            pairs=tuple(SensorPair._make(p) for p in pairs.get(row["id"], [])),
            radiators=tuple(radiators.get(row["id"], [])),
        )
        for row in rows
    }


async def load_building(conn: asyncpg.Connection, building_id: int) -> Building | None:
    """:func:`load_buildings` for one building (None if it does not exist)."""
    return (await load_buildings(conn, [building_id])).get(building_id)


def _values_by_building(
    rows: list[asyncpg.Record], fields: tuple[str, ...]
) -> dict[int, list[tuple]]:
    """Rows grouped by their leading ``building_id``, as tuples of the other columns, which
    must be ``fields`` in order (a named tuple made from them needs no dict per row)."""
    if rows and tuple(rows[0].keys())[1:] != fields:
        raise ValueError(f"columns {tuple(rows[0].keys())[1:]} are not {fields}")
    grouped: dict[int, list[tuple]] = {}
    for row in rows:
        values = tuple(row.values())
        grouped.setdefault(values[0], []).append(values[1:])
    return grouped


def _methodology(value: str | dict) -> Methodology:
    if isinstance(value, str):
        return Methodology.model_validate_json(value)
    return Methodology.model_validate(value)
