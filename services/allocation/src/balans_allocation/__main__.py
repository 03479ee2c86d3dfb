"""Entry point: ``python -m balans_allocation`` or ``balans-allocation``."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from balans_allocation.handlers import handle_readings_stored
from balans_allocation.settings import AllocationSettings
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext) -> None:
    """Consume ReadingsStored (durable, queue group: instances share the work), one event
    at a time per instance; buildings are serialised across instances by an advisory lock."""
    settings = ctx.settings
    if not isinstance(settings, AllocationSettings):
        raise TypeError("allocation needs AllocationSettings")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    nc = await connect_nats(settings.nats_url, "allocation")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        lock = asyncio.Lock()

        async def on_message(msg: Msg) -> None:
            async with lock:
                await handle_readings_stored(msg, pool, js, settings)

        sub = await js.subscribe(
            subjects.READINGS_STORED_ALL,
            queue=settings.allocation_consumer,
            durable=settings.allocation_consumer,
            cb=on_message,
            manual_ack=True,
            config=ConsumerConfig(ack_wait=120, max_ack_pending=64),
        )
        ctx.set_ready(consumer=settings.allocation_consumer)
        await ctx.stopping.wait()
        await sub.drain()
    finally:
        await nc.drain()
        await pool.close()


def main() -> None:
    run_service("allocation", AllocationSettings(), serve)


if __name__ == "__main__":
    main()
