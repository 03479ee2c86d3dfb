"""Run the pipeline on a simulated city: simulator -> allocation -> balance.

For the detection benchmark and the end-to-end tests only: it drives three services at
once, so it lives beside the benchmark, outside the services' packages. Readings take the
simulator's documented fast path straight into PostgreSQL (``balans_sim.api``); allocation
computes ``meter_consumption`` and ``heat_allocation`` with its own code; balance then
analyses every building once, at the end, over the whole period (alerts of episodes that
ended are recorded opened and closed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from balans_allocation.building import load_building
from balans_allocation.compute import compute_building
from balans_allocation.storage import write_result
from balans_balance.analysis import analyse_building
from balans_balance.groups import generate_building_groups
from balans_db.secrets import KeyVault
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.faults import FAULT_KINDS, FaultRecord
from balans_sim.pgwriter import write_chunks
from balans_sim.world import write_city

HOUR = timedelta(hours=1)


@dataclass
class ScenarioResult:
    faults: list[FaultRecord]
    start: datetime
    end: datetime
    building_ids: dict[str, int]


async def simulate(
    database_url: str,
    config: CityConfig,
    *,
    start: datetime,
    warmup_weeks: float,
    fault_weeks: float,
    faults_per_week: float,
    kinds: tuple[str, ...] | None = None,
    faults: list[dict[str, Any]] | None = None,
) -> ScenarioResult:
    """Write the city and its readings: ``warmup_weeks`` without faults (the bands learn),
    then ``fault_weeks`` with drawn faults (or exactly ``faults``, FaultRecord fields)."""
    warm = round(warmup_weeks * 168)
    hot = round(fault_weeks * 168)
    sim, unrouted = prepare(config, start, warm + hot)  # no_route records only
    conn = await asyncpg.connect(database_url)
    try:
        await write_city(conn, [b.spec for b in sim.buildings], KeyVault(), config.seed)
        done = 0
        truth: list[FaultRecord] = []
        while done < warm + hot:
            if done == warm:
                if faults is not None:
                    by_code = {b.spec.code: b for b in sim.buildings}
                    for f in faults:
                        record = FaultRecord.model_validate({"seed": config.seed, **f})
                        by_code[record.building].faults.append(record)
                        truth.append(record)
                else:
                    truth = sim.schedule_faults(hot, faults_per_week, kinds or FAULT_KINDS)
            step = min(168, (warm if done < warm else warm + hot) - done)
            await write_chunks(conn, sim.advance(step))
            done += step
        ids = {
            r["code"]: r["id"]
            for r in await conn.fetch(
                "select code, id from buildings where code = any($1::text[])",
                [b.spec.code for b in sim.buildings],
            )
        }
    finally:
        await conn.close()
    return ScenarioResult(unrouted + truth, start, start + (warm + hot) * HOUR, ids)


async def allocate(database_url: str, building_id: int, start: datetime, end: datetime) -> None:
    """allocation's own computation of consumption and per-flat heat for [start, end)."""
    conn = await asyncpg.connect(database_url)
    try:
        building = await load_building(conn, building_id)
        if building is None:
            raise ValueError(f"building {building_id} does not exist")
        hours = int((end - start) / HOUR)
        result = await compute_building(conn, building, start, hours, 2)
        await write_result(
            conn,
            building_id,
            building.flat_ids,
            result,
            building.methodology.model_dump(mode="json"),
        )
    finally:
        await conn.close()


async def analyse(database_url: str, building_id: int, until: datetime, days: int) -> None:
    """Generate the building's groups and analyse ``days`` up to the hour ``until`` (alert
    announcements wait in balance's outbox)."""
    conn = await asyncpg.connect(database_url)
    try:
        await generate_building_groups(conn, building_id)
        await analyse_building(conn, building_id, until, days=days)
    finally:
        await conn.close()
