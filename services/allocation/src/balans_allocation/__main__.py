"""Entry point: ``python -m balans_allocation`` or ``balans-allocation``."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from balans_allocation import sensor_alerts
from balans_allocation.allocator import OUTBOX, warm_up
from balans_allocation.handlers import compute_batch
from balans_allocation.settings import AllocationSettings
from balans_core.consumer import (
    ConsumerSpec,
    Failures,
    JetStreamConsumer,
    model_decoder,
    one_by_one,
)
from balans_core.costs import BuildingCosts, CpuLedger, freeze_startup_heap
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_core.partitions import PartitionedConsumers
from balans_core.service import ServiceContext, run_service
from balans_db.queries import world
from balans_protocol import subjects
from balans_protocol.messages import AlertMessage, ReadingsStored
from balans_protocol.streams import ensure_streams


def consumer_spec(settings: AllocationSettings) -> ConsumerSpec:
    """ReadingsStored, in batches: the events waiting when a batch finishes form the next."""
    return ConsumerSpec(
        service="allocation",
        stream=subjects.EVENTS_STREAM,
        subject=subjects.READINGS_STORED_ALL,
        durable=settings.allocation_consumer,
        batch=settings.allocation_batch_events,
        batch_linger_s=settings.allocation_batch_linger_s,
        batch_quiet_s=settings.allocation_batch_quiet_s,
        workers=settings.allocation_batch_workers,
        max_ack_pending=settings.allocation_batch_events,
        ack_wait_s=120.0,
        max_deliveries=settings.consumer_max_deliveries,
        nak_delay_s=5.0,
        nak_max_delay_s=120.0,
    )


def sensor_consumer_spec(settings: AllocationSettings) -> ConsumerSpec:
    """balance's faulty_sensor alerts, one at a time (rare; each recomputes a building)."""
    return ConsumerSpec(
        service="allocation",
        stream=subjects.ALERTS_STREAM,
        subject=subjects.alert(sensor_alerts.KIND),
        durable=settings.allocation_sensor_consumer,
        ack_wait_s=120.0,
        max_deliveries=settings.consumer_max_deliveries,
        nak_delay_s=5.0,
        nak_max_delay_s=120.0,
    )


async def serve(ctx: ServiceContext) -> None:
    """Consume ReadingsStored of the event partitions this process holds (instances split
    the buildings, balans_core.partitions); a building is also serialised across instances
    by an advisory lock, which covers a lease lost to a stalled process."""
    settings = ctx.settings
    if not isinstance(settings, AllocationSettings):
        raise TypeError("allocation needs AllocationSettings")
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=1, max_size=settings.allocation_db_pool_size
    )
    nc = await connect_nats(settings.nats_url, "allocation")
    try:
        js = nc.jetstream()
        await ensure_streams(js, settings.nats_stream_replicas)
        async with pool.acquire() as conn:
            warmed = await warm_up(conn, settings.allocation_lookaround_hours)
        freeze_startup_heap()  # the kernels and tables are loaded: out of the collector's way

        relay = OutboxRelay(
            pool, js, OUTBOX, "allocation", poll_interval_s=settings.outbox_poll_interval_s
        )

        costs = BuildingCosts()
        ledger = CpuLedger()  # the handler loops' batches overlap: their CPU is noted once

        async def compute(events: Sequence[ReadingsStored]) -> Failures:
            return await compute_batch(events, pool, relay, settings, costs, ledger)

        async def weigh() -> dict[int, float]:
            return costs.weights(await world.meters_per_building(pool))

        consumer = JetStreamConsumer(
            js, consumer_spec(settings), model_decoder(ReadingsStored), compute
        )
        alerts = JetStreamConsumer(
            js,
            sensor_consumer_spec(settings),
            model_decoder(AlertMessage),
            one_by_one(sensor_alerts.follower(pool, relay, settings)),
        )
        partitions = PartitionedConsumers(
            js,
            [consumer],
            lease_s=settings.partition_lease_s,
            replicas=settings.nats_stream_replicas,
            # by what each building's batches cost (its meters until measured): the
            # processes finish an hour together
            weigh=weigh,
        )
        ctx.set_ready(consumer=settings.allocation_consumer, warmed_buildings=warmed)
        await ctx.run_until_stopped(
            relay.run(ctx.stopping), partitions.run(ctx.stopping), alerts.run(ctx.stopping)
        )
    finally:
        await nc.drain()
        await pool.close()


def main() -> None:
    run_service("allocation", AllocationSettings(), serve)


if __name__ == "__main__":
    main()
