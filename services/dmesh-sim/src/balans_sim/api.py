"""Python API: run N weeks of a city with faults, quickly (for detector scoring and tests).

Example::

    from balans_sim.api import simulate_into_database
    result = await simulate_into_database(
        database_url, CityConfig(seed=3, buildings=4), start=datetime(2026, 1, 5, tzinfo=UTC),
        weeks=4, faults_per_week=1.0, ground_truth=Path("truth.jsonl"))

The readings go straight into PostgreSQL (:mod:`balans_sim.pgwriter`); the concentrators'
TCP path through ingest is :mod:`balans_sim.concentrator`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import asyncpg

from balans_db.secrets import KeyVault
from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import hour_index
from balans_sim.engine import Chunk, CitySim
from balans_sim.faults import FAULT_KINDS, FaultRecord, write_ground_truth
from balans_sim.pgwriter import write_chunks
from balans_sim.world import write_city

CHUNK_HOURS = 24 * 7


@dataclass
class SimResult:
    buildings: int
    hours: int
    readings: int  # rows inserted
    faults: list[FaultRecord]


def prepare(
    config: CityConfig,
    start: datetime,
    hours: int,
    faults_per_week: float = 0.0,
    kinds: tuple[str, ...] = FAULT_KINDS,
) -> tuple[CitySim, list[FaultRecord]]:
    """A city simulation starting at ``start`` (UTC hour) with its faults scheduled; the
    ground truth opens with a ``no_route`` record for each module without a route."""
    sim = CitySim(generate_city(config), config.seed, hour_index(start))
    truth = sim.no_route()
    if faults_per_week > 0:
        truth += sim.schedule_faults(hours, faults_per_week, kinds)
    return sim, truth


async def simulate_into_database(
    database_url: str,
    config: CityConfig,
    *,
    start: datetime,
    weeks: float,
    faults_per_week: float = 0.0,
    kinds: tuple[str, ...] = FAULT_KINDS,
    ground_truth: Path | None = None,
    vault: KeyVault | None = None,
    on_chunk: Callable[[list[Chunk]], None] | None = None,
) -> SimResult:
    """Write the city (if missing), then ``weeks`` of readings from ``start`` straight into
    PostgreSQL; faults go to ``ground_truth`` (JSON lines) before any reading."""
    hours = round(weeks * 168)
    sim, truth = prepare(config, start, hours, faults_per_week, kinds)
    if ground_truth is not None:
        write_ground_truth(ground_truth, truth)
    conn = await asyncpg.connect(database_url)
    try:
        await write_city(conn, [b.spec for b in sim.buildings], vault or KeyVault(), config.seed)
        readings = 0
        done = 0
        while done < hours:
            step = min(CHUNK_HOURS, hours - done)
            chunks = sim.advance(step)
            readings += await write_chunks(conn, chunks)
            done += step
            if on_chunk is not None:
                on_chunk(chunks)
    finally:
        await conn.close()
    return SimResult(len(sim.buildings), hours, readings, truth)
