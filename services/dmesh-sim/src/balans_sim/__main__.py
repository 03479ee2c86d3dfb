"""Entry point: ``python -m balans_sim`` or ``balans-sim`` (run by ``balans run`` as ``sim``).

Starts the city at ``BALANS_SIM_EPOCH`` (so registers continue across restarts), writes the
last ``BALANS_SIM_BACKFILL_DAYS`` of history straight into PostgreSQL, reports ready, then
uploads every new hour through the concentrators' TCP connections to ingest.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import structlog

from balans_core.service import ServiceContext, run_service
from balans_db.secrets import KeyVault
from balans_protocol.boot import next_boot
from balans_sim.announce import announce_backfill
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.climate import EPOCH, hour_index, hour_start
from balans_sim.concentrator import SimConcentrator
from balans_sim.engine import CitySim
from balans_sim.faults import FaultRecord, write_ground_truth
from balans_sim.lifecycle import TenantChange, record_due, write_lifecycle_truth
from balans_sim.metrics import ERRORS
from balans_sim.pgwriter import write_chunks
from balans_sim.runner import count, run_concentrators
from balans_sim.settings import SimSettings
from balans_sim.world import concentrator_keys, write_city

FAULT_SCHEDULE_H = 24 * 365 * 5  # faults drawn over a fixed span from the epoch (see start_city)
OUTAGE_HORIZON_H = 24 * 120
log = structlog.get_logger("sim")


def start_city(s: SimSettings, now_h: int) -> tuple[CitySim, list[FaultRecord], list[TenantChange]]:
    """The city at the start of the backfill, with its faults, meter exchanges and tenant
    changes.

    They are drawn over a fixed span from the epoch, not up to ``now``, so every start
    sees the same history, and the registers replayed from the
    epoch (registers only: :meth:`CitySim.replay`, exchanges included) continue the series
    an earlier run stored, whenever the service is restarted.
    """
    config = CityConfig(seed=s.sim_seed, preset=s.sim_preset, buildings=s.sim_buildings)
    sim, truth = prepare(config, s.sim_epoch, FAULT_SCHEDULE_H, s.sim_faults_per_week)
    sim.schedule_exchanges(FAULT_SCHEDULE_H, s.sim_meter_exchanges_per_year)
    tenants = sim.schedule_tenant_changes(FAULT_SCHEDULE_H, s.sim_tenant_changes_per_year)
    backfill_from = max(sim.start_hour, now_h - 24 * s.sim_backfill_days)
    if backfill_from > sim.next_hour:
        sim.replay(backfill_from - sim.next_hour)
    return sim, truth, tenants


async def serve(ctx: ServiceContext) -> None:
    s = ctx.settings
    assert isinstance(s, SimSettings)
    began = time.monotonic()
    now_h = hour_index(datetime.now(UTC))
    sim, truth, tenants = start_city(s, now_h)
    replayed_s = time.monotonic() - began
    s.sim_ground_truth.parent.mkdir(parents=True, exist_ok=True)
    s.sim_ground_truth.unlink(missing_ok=True)
    write_ground_truth(s.sim_ground_truth, truth)
    vault = KeyVault.from_hex(s.master_key)
    conn = await asyncpg.connect(s.database_url)
    try:
        await write_city(conn, [b.spec for b in sim.buildings], vault, s.sim_seed)
        keys = await concentrator_keys(conn, [b.spec for b in sim.buildings], vault)
        await record_due(conn, sim.exchanged(), tenants, hour_start(sim.next_hour))
        rows = 0
        delivered = {b.spec.code: 0 for b in sim.buildings}
        backfill_from = sim.next_hour
        backfill_until = now_h - s.sim_backfill_holdback_hours
        while sim.next_hour < backfill_until:
            chunks = sim.advance(min(24 * 7, backfill_until - sim.next_hour))
            await record_due(conn, sim.exchanged(), tenants, hour_start(sim.next_hour))
            rows += await write_chunks(conn, chunks)
            count(chunks)
            for chunk in chunks:
                delivered[chunk.building] += chunk.reading_count()
        if sim.next_hour > backfill_from:
            await announce_backfill(
                s.nats_url, conn, delivered, hour_start(backfill_from), hour_start(sim.next_hour)
            )
    finally:
        await conn.close()
    write_lifecycle_truth(s.sim_ground_truth, sim.exchanged())
    write_lifecycle_truth(s.sim_ground_truth, tenants)
    log.info(
        "backfill done",
        rows=rows,
        faults=len(truth),
        replay_seconds=round(replayed_s, 1),
        seconds=round(time.monotonic() - began, 1),
    )
    outages = sim.schedule_outages(
        OUTAGE_HORIZON_H, s.sim_outages_per_week, s.sim_outage_mean_hours
    )
    write_ground_truth(s.sim_ground_truth, outages)
    boot = next_boot(s.sim_boot_file)
    concentrators = [
        SimConcentrator(
            b, keys[b.spec.concentrator_serial], s.sim_ingest_host, s.sim_ingest_port, boot=boot
        )
        for b in sim.buildings
    ]
    for c in concentrators:
        c.current_hour = sim.next_hour
        c.start()
    ctx.set_ready(buildings=len(concentrators), backfill_rows=rows)
    try:
        while s.sim_realtime and not ctx.stopping.is_set():
            next_boundary = EPOCH.timestamp() + (sim.next_hour + 1) * 3600 + 5
            try:
                await asyncio.wait_for(ctx.stopping.wait(), max(next_boundary - time.time(), 0))
                break
            except TimeoutError:
                pass
            try:
                await run_concentrators(
                    sim, concentrators, 1, hours_per_second=None, stop=ctx.stopping
                )
                await _record_realtime(s, sim, tenants)
            except Exception:
                ERRORS.labels(stage="realtime").inc()
                log.exception("hour failed", hour=sim.next_hour)
                raise
        await ctx.stopping.wait()
    finally:
        await asyncio.gather(*(c.close() for c in concentrators))


async def _record_realtime(s: SimSettings, sim: CitySim, tenants: list[TenantChange]) -> None:
    """Record what the last hour brought (an exchange, a move); an exchange's hours from
    the swap are announced again, since their readings went out before the record."""
    conn = await asyncpg.connect(s.database_url)
    try:
        new = await record_due(conn, sim.exchanged(), tenants, hour_start(sim.next_hour))
        if new:
            write_lifecycle_truth(s.sim_ground_truth, new)
            for e in new:
                await announce_backfill(
                    s.nats_url, conn, {e.building: 1}, floor_hour(e.at), hour_start(sim.next_hour)
                )
    finally:
        await conn.close()


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def main() -> None:
    run_service("sim", SimSettings(), serve)


if __name__ == "__main__":
    main()
