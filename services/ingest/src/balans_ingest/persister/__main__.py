"""Entry point of the persister service: ``python -m balans_ingest.persister``."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog

from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_db.partitions import ensure_partitions
from balans_ingest.metrics import PERSISTER_ERRORS
from balans_ingest.persister.consumer import Persister
from balans_ingest.settings import PersisterSettings
from balans_protocol.streams import ensure_streams

log = structlog.get_logger("persister")

PARTITIONS_INTERVAL_S = 6 * 3600.0
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


async def keep_partitions(settings: PersisterSettings, stopping: asyncio.Event) -> None:
    """Ensure the monthly partitions of the readings window now and every few hours: the
    readings tables have no default partition, so a month without one would refuse its
    readings (they would be redelivered until it exists)."""
    while not stopping.is_set():
        try:
            await ensure_partitions(
                settings.database_url, horizon_days=settings.readings_horizon_days
            )
        except DATABASE_ERRORS as exc:
            PERSISTER_ERRORS.labels("partitions").inc()
            log.error("monthly partitions not ensured; retrying later", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), PARTITIONS_INTERVAL_S)


async def serve(ctx: ServiceContext) -> None:
    """Consume UPLOADS until SIGTERM, finish the batch in hand, then drain NATS."""
    settings = ctx.settings
    assert isinstance(settings, PersisterSettings)
    nc = await connect_nats(settings.nats_url, "persister")
    partitions = asyncio.create_task(keep_partitions(settings, ctx.stopping))
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats_stream_replicas)
        persister = Persister(settings, nc, js)
        ctx.set_ready(durable=settings.persister_durable)
        await persister.run(ctx.stopping)
    finally:
        partitions.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await partitions
        await nc.drain()


def main() -> None:
    run_service("persister", PersisterSettings(), serve)


if __name__ == "__main__":
    main()
