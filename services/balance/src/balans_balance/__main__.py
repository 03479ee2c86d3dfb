"""Entry point: ``python -m balans_balance`` or ``balans-balance``."""

from __future__ import annotations

import asyncio

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from balans_balance.service import handle_allocation, serve_group_api
from balans_balance.settings import BalanceSettings
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams


async def serve(ctx: ServiceContext) -> None:
    """Serve the group API and analyse buildings as allocation announces them."""
    settings = ctx.settings
    assert isinstance(settings, BalanceSettings)
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=4)
    nc = await connect_nats(settings.nats_url, "balance")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        group_api = await serve_group_api(nc, pool)

        async def on_event(msg: Msg) -> None:
            await handle_allocation(msg, pool, js, settings)

        events = await js.subscribe(
            subjects.ALLOCATION_ALL,
            durable=settings.balance_consumer,
            queue=settings.balance_consumer,
            cb=on_event,
            manual_ack=True,
            config=ConsumerConfig(ack_wait=300, max_ack_pending=4),
        )
        ctx.set_ready(groups_subject=subjects.BALANCE_GROUPS_API)
        await ctx.stopping.wait()
        await events.unsubscribe()
        await group_api.unsubscribe()
    finally:
        await nc.drain()
        await asyncio.wait_for(pool.close(), timeout=10)


def main() -> None:
    run_service("balance", BalanceSettings(), serve)


if __name__ == "__main__":
    main()
