"""Entry point: ``python -m balans_balance`` or ``balans-balance``."""

from __future__ import annotations

import asyncio

import asyncpg
from threadpoolctl import threadpool_limits

from balans_balance.alerts import OUTBOX
from balans_balance.service import (
    OpenAlerts,
    analyse_event,
    follow_topology_event,
    forget_partition,
    note_stored_readings,
    serve_alert_actions,
    serve_group_api,
)
from balans_balance.settings import BalanceSettings
from balans_balance.windows import BuildingStates
from balans_core.consumer import ConsumerSpec, JetStreamConsumer
from balans_core.costs import BuildingCosts, freeze_startup_heap
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_core.partitions import PartitionedConsumers
from balans_core.service import ServiceContext, run_service
from balans_db.queries import balance as balance_queries
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored, TopologyChanged
from balans_protocol.streams import ensure_streams


def consumer_spec(settings: BalanceSettings) -> ConsumerSpec:
    """AllocationComputed, one building at a time per worker; an analysis may take minutes."""
    return ConsumerSpec(
        service="balance",
        stream=subjects.EVENTS_STREAM,
        subject=subjects.ALLOCATION_ALL,
        durable=settings.balance_consumer,
        max_ack_pending=settings.balance_workers * 2,
        ack_wait_s=300.0,
        max_deliveries=settings.consumer_max_deliveries,
        workers=settings.balance_workers,
        nak_delay_s=30.0,
        nak_max_delay_s=300.0,
    )


def topology_spec(settings: BalanceSettings) -> ConsumerSpec:
    """TopologyChanged (provisioning): a building's groups follow, one event at a time."""
    return ConsumerSpec(
        service="balance",
        stream=subjects.EVENTS_STREAM,
        subject=subjects.TOPOLOGY_CHANGED_ALL,
        durable=settings.balance_topology_consumer,
        max_deliveries=settings.consumer_max_deliveries,
    )


def readings_spec(settings: BalanceSettings) -> ConsumerSpec:
    """ReadingsStored (the persister's): late rows are noted for the building's turn; a
    note reads nothing, so a batch of them is settled at once."""
    return ConsumerSpec(
        service="balance",
        stream=subjects.EVENTS_STREAM,
        subject=subjects.READINGS_STORED_ALL,
        durable=settings.balance_readings_consumer,
        batch=64,
        max_ack_pending=256,
        max_deliveries=settings.consumer_max_deliveries,
    )


async def serve(ctx: ServiceContext) -> None:
    """Serve the group API and analyse buildings as allocation announces them."""
    settings = ctx.settings
    assert isinstance(settings, BalanceSettings)
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.balance_db_pool_size
    )
    nc = await connect_nats(settings.nats_url, "balance")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats_stream_replicas)
        relay = OutboxRelay(
            pool, js, OUTBOX, "balance", poll_interval_s=settings.outbox_poll_interval_s
        )
        group_api = await serve_group_api(nc, pool)
        alert_api = await serve_alert_actions(nc, pool, relay)

        states = BuildingStates(
            settings.balance_state_buildings, settings.balance_analysis_every_hours
        )

        open_alerts = OpenAlerts()
        costs = BuildingCosts()

        async def weigh() -> dict[int, float]:
            return costs.weights(await balance_queries.groups_per_building(pool))

        async def on_event(event: AllocationComputed) -> None:
            await analyse_event(event, pool, relay, settings, states, open_alerts, costs)

        events = JetStreamConsumer.each(js, consumer_spec(settings), AllocationComputed, on_event)

        async def on_topology(event: TopologyChanged) -> None:
            await follow_topology_event(event, pool, states)

        topology = JetStreamConsumer.each(js, topology_spec(settings), TopologyChanged, on_topology)

        async def on_readings(event: ReadingsStored) -> None:
            await note_stored_readings(event, states)

        readings = JetStreamConsumer.each(js, readings_spec(settings), ReadingsStored, on_readings)
        # a building's analyses, topology changes and stored readings go to the process
        # holding its partition (the one keeping its window)
        partitions = PartitionedConsumers(
            js,
            [events, topology, readings],
            lease_s=settings.partition_lease_s,
            replicas=settings.nats_stream_replicas,
            # a partition given up: its buildings' kept windows go (another process has them)
            on_release=lambda partition: forget_partition(states, partition),
            # by what each building's analyses cost: the processes finish an hour together
            weigh=weigh,
        )
        # the modules are loaded: a full collection no longer lands on an analysis's cost
        freeze_startup_heap()
        ctx.set_ready(groups_subject=subjects.BALANCE_GROUPS_API)
        await ctx.run_until_stopped(relay.run(ctx.stopping), partitions.run(ctx.stopping))
        await group_api.unsubscribe()
        await alert_api.unsubscribe()
    finally:
        await nc.drain()
        await asyncio.wait_for(pool.close(), timeout=10)


def main() -> None:
    # numpy's BLAS on one thread: the analysis's matrices are small (a few columns by a
    # few hundred blocks, or by the change fit's 40 000 windows), where a second BLAS
    # thread only waits for the first, and on a busy host (PostgreSQL, other stages)
    # made the change fit 3-4x slower; processes, not threads, are how balance scales
    with threadpool_limits(limits=1, user_api="blas"):
        run_service("balance", BalanceSettings(), serve)


if __name__ == "__main__":
    main()
