"""Entry point: ``python -m balans_billing`` or ``balans-billing``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import asyncpg
import structlog

from balans_billing.closer import run_closer
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.documents import serve_documents
from balans_billing.service import BillingRun, event_consumers, serve_requests
from balans_billing.settings import BillingSettings
from balans_billing.storage import OUTBOX
from balans_billing.tariff_requests import serve_tariffs
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_core.service import ServiceContext, run_service
from balans_protocol.streams import ensure_streams

log = structlog.get_logger("billing")


async def serve(ctx: ServiceContext, settings: BillingSettings) -> None:
    """Seed demo tariffs (development), consume period and allocation events, answer
    requests, close periods as allocation completes them; drain on a stop signal."""
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.billing_db_pool_size
    )
    nc = await connect_nats(settings.nats_url, "billing")
    closer: asyncio.Task[None] | None = None
    try:
        if settings.seeds_demo_tariffs:
            async with pool.acquire() as conn:
                added = await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
            log.info("demo tariffs", added=added, effective_from=DEMO_TARIFFS_FROM.isoformat())
        js = nc.jetstream()
        await ensure_streams(js)
        relay = OutboxRelay(
            pool, js, OUTBOX, "billing", poll_interval_s=settings.outbox_poll_interval_s
        )
        billing = BillingRun(pool, relay)
        await serve_requests(nc, billing, settings.billing_api_queue)
        await serve_documents(nc, pool, settings.billing_api_queue)
        await serve_tariffs(nc, pool, settings.billing_api_queue)
        closer = asyncio.create_task(
            run_closer(
                pool,
                relay,
                settings.period_check_interval_s,
                timedelta(hours=settings.period_close_lateness_hours),
                ctx.stopping,
            )
        )
        ctx.set_ready()
        await ctx.run_until_stopped(
            relay.run(ctx.stopping),
            *(consumer.run(ctx.stopping) for consumer in event_consumers(js, billing, settings)),
        )
    finally:
        if closer is not None:
            closer.cancel()  # a pass cut short rolls back and is redone at the next start
            with contextlib.suppress(asyncio.CancelledError):
                await closer
        await nc.drain()
        await pool.close()


def main() -> None:
    settings = BillingSettings()
    run_service("billing", settings, lambda ctx: serve(ctx, settings))


if __name__ == "__main__":
    main()
