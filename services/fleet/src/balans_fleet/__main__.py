"""Entry point: ``python -m balans_fleet`` (``fleet`` under ``balans run``)."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_fleet.collector import FleetCollector
from balans_fleet.settings import FleetSettings


async def serve(ctx: ServiceContext) -> None:
    """Refresh the fleet gauges every ``fleet_refresh_seconds`` until stopped."""
    settings = ctx.settings
    if not isinstance(settings, FleetSettings):
        raise TypeError(f"fleet needs FleetSettings, got {type(settings).__name__}")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
    nc = await connect_nats(settings.nats_url, "fleet")
    try:
        collector = FleetCollector(settings, pool, nc.jetstream())
        await collector.refresh()
        ctx.set_ready(refresh_seconds=settings.fleet_refresh_seconds)
        while not ctx.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ctx.stopping.wait(), settings.fleet_refresh_seconds)
            if not ctx.stopping.is_set():
                await collector.refresh()
    finally:
        await nc.drain()
        await pool.close()


def main() -> None:
    run_service("fleet", FleetSettings(), serve)


if __name__ == "__main__":
    main()
