"""How allocation's batch settings form and hand over batches: partitions' events that come within
``BALANS_ALLOCATION_BATCH_QUIET_S`` of the last join it, a longer silence closes it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from balans_allocation.__main__ import consumer_spec
from balans_allocation.settings import AllocationSettings
from balans_core.consumer import ConsumerSpec
from balans_core.partitions import _Batch, _Lane


@dataclass
class _Recorder:
    """Stands in for the JetStream consumer: records each batch handed over."""

    spec: ConsumerSpec
    handed: list[list[str]]

    async def handle(self, msgs: Sequence[str]) -> None:
        self.handed.append(list(msgs))


async def _batches(gap_s: float, **settings: float) -> list[list[str]]:
    """What the handler is handed when one partition's events come ``gap_s`` after
    another's, with allocation's consumer built from ``settings`` (its handler loops too)."""
    spec = consumer_spec(
        AllocationSettings(database_url="postgresql://x/y", nats_url="nats://x:1", **settings)
    )
    recorder = _Recorder(spec, [])
    lane = _Lane(recorder)  # type: ignore[arg-type]  # only .spec and .handle are used
    drained = asyncio.Event()
    handlers = [asyncio.create_task(lane.handle(drained)) for _ in range(spec.workers)]
    first, second = _Batch(["p0-a", "p0-b"]), _Batch(["p1-a"])  # type: ignore[list-item]
    await lane.queue.put(first)
    await asyncio.sleep(gap_s)
    await lane.queue.put(second)
    await asyncio.gather(first.settled.wait(), second.settled.wait())
    drained.set()
    await asyncio.gather(*handlers)
    return recorder.handed


async def test_a_silence_longer_than_the_quiet_gap_closes_the_batch() -> None:
    """The default gap (0.01 s) closes the batch before a partition 0.3 s late; the linger
    (1 s here) would have waited for it."""
    handed = await _batches(0.3, allocation_batch_linger_s=1.0)
    assert handed == [["p0-a", "p0-b"], ["p1-a"]]


async def test_a_longer_quiet_gap_keeps_the_batch_open_for_a_late_partition() -> None:
    """With the gap set above the partitions' spread, their events are one batch."""
    handed = await _batches(0.05, allocation_batch_linger_s=2.0, allocation_batch_quiet_s=1.0)
    assert handed == [["p0-a", "p0-b", "p1-a"]]


async def test_with_two_loops_a_partition_within_the_gap_joins_the_lingering_batch() -> None:
    """With ``BALANS_ALLOCATION_BATCH_WORKERS=2`` the idle loop does not take the second
    partition's events for a batch of its own while the first loop's batch is forming."""
    handed = await _batches(
        0.05, allocation_batch_linger_s=2.0, allocation_batch_quiet_s=1.0,
        allocation_batch_workers=2,
    )  # fmt: skip
    assert handed == [["p0-a", "p0-b", "p1-a"]]


async def test_the_linger_bounds_the_wait_whatever_the_gap() -> None:
    """A quiet gap longer than the linger does not extend it."""
    handed = await _batches(0.5, allocation_batch_linger_s=0.05, allocation_batch_quiet_s=5.0)
    assert handed == [["p0-a", "p0-b"], ["p1-a"]]


@dataclass
class _Blocking(_Recorder):
    """Holds the batch beginning with "first" until ``release``."""

    release: asyncio.Event

    async def handle(self, msgs: Sequence[str]) -> None:
        self.handed.append(list(msgs))
        if msgs[0] == "first":
            await self.release.wait()


@pytest.mark.parametrize(("workers", "overlapped"), [(1, False), (2, True)])
async def test_two_workers_compute_a_second_batch_while_the_first_waits(
    workers: int, overlapped: bool
) -> None:
    """With ``BALANS_ALLOCATION_BATCH_WORKERS=2`` a batch that comes while the first is
    still being computed is handed over at once; with one it waits for the first."""
    spec = consumer_spec(
        AllocationSettings(
            database_url="postgresql://x/y", nats_url="nats://x:1",
            allocation_batch_workers=workers,
        )
    )  # fmt: skip
    handler = _Blocking(spec, [], asyncio.Event())
    lane = _Lane(handler)  # type: ignore[arg-type]
    drained = asyncio.Event()
    loops = [asyncio.create_task(lane.handle(drained)) for _ in range(spec.workers)]
    first, second = _Batch(["first"]), _Batch(["second"])  # type: ignore[list-item]
    await lane.queue.put(first)
    await asyncio.sleep(0.3)  # the first batch is being computed (its linger is over)
    await lane.queue.put(second)
    await asyncio.sleep(0.3)
    assert (["second"] in handler.handed) is overlapped
    handler.release.set()
    await asyncio.gather(first.settled.wait(), second.settled.wait())
    drained.set()
    await asyncio.gather(*loops)
    assert handler.handed == [["first"], ["second"]]
