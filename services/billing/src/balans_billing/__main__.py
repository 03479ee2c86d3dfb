"""Entry point: ``python -m balans_billing`` or ``balans-billing``."""

from __future__ import annotations

import asyncpg

from balans_billing.service import BillingRun, serve_requests, subscribe_events
from balans_billing.settings import BillingSettings
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext, settings: BillingSettings) -> None:
    """Consume period and allocation events, answer requests; drain on a stop signal."""
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.db_pool_size
    )
    nc = await connect_nats(settings.nats_url, "billing")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        billing = BillingRun(nc, pool)
        await serve_requests(nc, billing)
        await subscribe_events(js, billing)
        ctx.set_ready()
        await ctx.stopping.wait()
    finally:
        await nc.drain()
        await pool.close()


def main() -> None:
    settings = BillingSettings()
    run_service("billing", settings, lambda ctx: serve(ctx, settings))


if __name__ == "__main__":
    main()
