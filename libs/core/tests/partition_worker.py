"""One process of a test stage: consumes its share of the event partitions and writes each
handled event as ``<monotonic ns> <building> <seq>`` to a file (test_partitions.py); a
topology event's seq is written plus :data:`TOPOLOGY_SEQ` (two kinds, one consumer).

argv: NATS URL, member id, output file, lease seconds, seconds each event takes."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

from pydantic import BaseModel

from balans_core.consumer import ConsumerSpec, JetStreamConsumer
from balans_core.nats import connect_nats
from balans_core.partitions import PartitionedConsumers
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams

SERVICE = "parttest"
TOPOLOGY_SEQ = 1000


class Event(BaseModel):
    building_id: int
    seq: int


async def main(url: str, member: str, out: Path, lease_s: float, work_s: float) -> None:
    nc = await connect_nats(url, f"parttest-{member}")
    js = nc.jetstream()
    await ensure_streams(js)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    with out.open("a") as sink:

        def handler(offset: int) -> Callable[[Event], Awaitable[None]]:
            async def handle(event: Event) -> None:
                await asyncio.sleep(work_s)
                sink.write(f"{time.monotonic_ns()} {event.building_id} {event.seq + offset}\n")
                sink.flush()

            return handle

        spec = ConsumerSpec(
            service=SERVICE,
            stream=subjects.EVENTS_STREAM,
            subject=subjects.READINGS_STORED_ALL,
            durable=SERVICE,
            batch=4,
            max_ack_pending=4,
            fetch_timeout_s=0.2,
        )
        topology = replace(
            spec, subject=subjects.TOPOLOGY_CHANGED_ALL, durable=f"{SERVICE}-topology", batch=1
        )
        consumers = [
            JetStreamConsumer.each(js, spec, Event, handler(0)),
            JetStreamConsumer.each(js, topology, Event, handler(TOPOLOGY_SEQ)),
        ]
        partitions = PartitionedConsumers(js, consumers, lease_s=lease_s, member=member)
        await partitions.run(stopping)
    await nc.drain()


if __name__ == "__main__":
    url, member, out, lease, work = sys.argv[1:6]
    asyncio.run(main(url, member, Path(out), float(lease), float(work)))
