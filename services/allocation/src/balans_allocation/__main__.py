"""Entry point: ``python -m balans_allocation`` or ``balans-allocation``."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from nats.js.client import JetStreamContext

from balans_allocation.allocator import warm_up
from balans_allocation.handlers import handle_readings_stored, log
from balans_allocation.metrics import EVENTS
from balans_allocation.settings import AllocationSettings
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext) -> None:
    """Consume ReadingsStored (durable, queue group: instances share the work). The events
    waiting when a batch finishes form the next batch; buildings are serialised across
    instances by an advisory lock."""
    settings = ctx.settings
    if not isinstance(settings, AllocationSettings):
        raise TypeError("allocation needs AllocationSettings")
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    nc = await connect_nats(settings.nats_url, "allocation")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        async with pool.acquire() as conn:
            warmed = await warm_up(conn, settings.allocation_lookaround_hours)
        waiting: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_message(msg: Msg) -> None:
            await waiting.put(msg)

        worker = asyncio.create_task(_work(waiting, pool, js, settings))
        sub = await js.subscribe(
            subjects.READINGS_STORED_ALL,
            queue=settings.allocation_consumer,
            durable=settings.allocation_consumer,
            cb=on_message,
            manual_ack=True,
            config=ConsumerConfig(ack_wait=120, max_ack_pending=settings.allocation_batch_events),
        )
        ctx.set_ready(consumer=settings.allocation_consumer, warmed_buildings=warmed)
        await ctx.stopping.wait()
        await sub.drain()
        await waiting.join()
        worker.cancel()
    finally:
        await nc.drain()
        await pool.close()


async def _work(
    waiting: asyncio.Queue[Msg],
    pool: asyncpg.Pool,
    js: JetStreamContext,
    settings: AllocationSettings,
) -> None:
    """Handle batches for ever: the next event and every other one already waiting."""
    while True:
        batch = [await waiting.get()]
        while len(batch) < settings.allocation_batch_events and not waiting.empty():
            batch.append(waiting.get_nowait())
        try:
            await handle_readings_stored(batch, pool, js, settings)
        except Exception as exc:  # an ack or term that failed: redelivered after ack_wait
            EVENTS.labels("failed").inc(len(batch))
            log.exception("allocation batch not acknowledged", events=len(batch), error=str(exc))
        finally:
            for _ in batch:
                waiting.task_done()


def main() -> None:
    run_service("allocation", AllocationSettings(), serve)


if __name__ == "__main__":
    main()
