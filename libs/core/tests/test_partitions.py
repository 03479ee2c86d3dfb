"""Partitioned consumers over a real NATS server, with real processes: two processes split
the buildings (none handled by both, each building's events in order, exactly once); one
stopping hands its partitions to the other at once; one killed has its partitions taken
over after its lease, unacknowledged events first and in order. The workers consume two
kinds of events through one consumer per partition."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from prometheus_client import REGISTRY

from balans_core.consumer import ConsumerSpec, JetStreamConsumer
from balans_core.nats import connect_nats
from balans_core.partitions import (
    PartitionedConsumers,
    _member_id,
    assigned,
    lease_holders,
    partition_durables,
    partition_weights,
)
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.streams import ensure_streams

WORKER = Path(__file__).with_name("partition_worker.py")
TOPOLOGY_SEQ = 1000  # partition_worker's: a topology event's seq is written plus this
LEASE_S = 2.0
BUILDINGS = range(1, 41)


@pytest.fixture(scope="module")
async def nc(module_nats_url: str) -> AsyncIterator[Client]:
    client = await connect_nats(module_nats_url, "test-partitions")
    await ensure_streams(client.jetstream())
    try:
        yield client
    finally:
        await client.drain()


class Worker:
    def __init__(self, url: str, member: str, folder: Path, work_s: float) -> None:
        self.member = member
        self.out = folder / f"{member}.txt"
        self.out.touch()
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), url, member, str(self.out), str(LEASE_S), str(work_s)]
        )

    def handled(self) -> list[tuple[int, int, int, str]]:
        """(time, building, seq, member) of every event this process handled."""
        rows = [line.split() for line in self.out.read_text().splitlines()]
        return [(int(t), int(b), int(s), self.member) for t, b, s in rows]

    def stop(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)


@pytest.fixture
def workers(module_nats_url: str, tmp_path: Path) -> Iterator[dict[str, Worker]]:
    started: dict[str, Worker] = {}

    def start(member: str, work_s: float = 0.0) -> Worker:
        started[member] = Worker(module_nats_url, member, tmp_path, work_s)
        return started[member]

    yield started | {"start": start}  # type: ignore[dict-item]
    for worker in started.values():
        if worker.proc.poll() is None:
            worker.stop(signal.SIGKILL)


async def holders(nc: Client) -> dict[int, str]:
    """partition -> the member whose lease it is (absent: free)."""
    return await lease_holders(nc.jetstream(), "parttest")


async def split_between(nc: Client, members: list[str]) -> bool:
    wanted = {p: m for m in members for p in assigned(members, m, subjects.EVENT_PARTITIONS)}
    return await holders(nc) == wanted


async def publish(nc: Client, seqs: range) -> None:
    js = nc.jetstream()
    for seq in seqs:
        for b in BUILDINGS:
            body = f'{{"building_id": {b}, "seq": {seq}}}'.encode()
            await js.publish(subjects.readings_stored(b), body)
            await js.publish(subjects.topology_changed(b), body)


def by_building(
    rows: list[tuple[int, int, int, str]], offset: int = 0
) -> dict[int, list[tuple[int, str]]]:
    """building -> (seq, member) in the order handled, of the stored-readings events (or,
    with ``offset=TOPOLOGY_SEQ``, of the topology events)."""
    found: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for _, b, seq, member in sorted(rows):
        if offset <= seq < offset + TOPOLOGY_SEQ:
            found[b].append((seq - offset, member))
    return found


def last_handling_order(handled: list[tuple[int, str]]) -> list[int]:
    """Seqs ordered by when each was handled last (a redelivered event counts when it was
    handled again)."""
    last = {seq: i for i, (seq, _) in enumerate(handled)}
    return sorted(last, key=last.__getitem__)


async def test_processes_split_hand_over_and_take_over(
    nc: Client, workers: dict[str, Worker]
) -> None:
    start = workers["start"]  # type: ignore[operator]
    a, b = start("a"), start("b")
    await eventually("a and b hold 8 partitions each", lambda: split_between(nc, ["a", "b"]))

    durables = {c.name for c in await nc.jetstream().consumers_info(subjects.EVENTS_STREAM)}
    assert {d for d in durables if d.startswith("parttest")} == set(partition_durables("parttest"))

    await publish(nc, range(0, 5))
    total = len(BUILDINGS) * 5 * 2  # both kinds
    await eventually(
        "round 1 handled", lambda: len(a.handled()) + len(b.handled()) >= total, timeout_s=30
    )
    for offset in (0, TOPOLOGY_SEQ):
        round1 = by_building(a.handled() + b.handled(), offset)
        for building, handled in round1.items():
            assert [seq for seq, _ in handled] == list(range(5)), f"{building}: {handled}"
            members = {m for _, m in handled}
            assert len(members) == 1, f"building {building} handled by {members}"
            owner = "a" if subjects.partition_of(building) % 2 == 0 else "b"
            assert members == {owner}
        assert {m for h in round1.values() for _, m in h} == {"a", "b"}

    # b stops: it settles what it holds and lets go; a takes everything without waiting
    b.stop(signal.SIGTERM)
    assert b.proc.returncode == 0
    await eventually("a holds every partition", lambda: split_between(nc, ["a"]))
    await publish(nc, range(5, 10))
    await eventually(
        "round 2 handled by a", lambda: len(a.handled()) >= total * 2 - len(b.handled())
    )
    for offset in (0, TOPOLOGY_SEQ):
        for building, handled in by_building(a.handled() + b.handled(), offset).items():
            assert [seq for seq, _ in handled] == list(range(10)), f"{building}: {handled}"
            assert {m for seq, m in handled if seq >= 5} == {"a"}

    # c joins, then dies in the middle of its work: a takes its partitions when its leases
    # expire, and the events c had not acknowledged come first and in order
    c = start("c", work_s=0.02)
    await eventually("a and c hold 8 partitions each", lambda: split_between(nc, ["a", "c"]))
    await publish(nc, range(10, 15))
    await eventually("c is busy", lambda: len(c.handled()) >= 40)
    c.stop(signal.SIGKILL)
    await eventually("a holds every partition", lambda: split_between(nc, ["a"]))
    rows = a.handled() + b.handled() + c.handled()
    await eventually(
        "round 3 handled",
        lambda: (
            {(bb, s) for _, bb, s, _ in a.handled() + c.handled() if s % TOPOLOGY_SEQ >= 10}
            == {(bb, s + o) for bb in BUILDINGS for s in range(10, 15) for o in (0, TOPOLOGY_SEQ)}
        ),
    )
    rows = a.handled() + b.handled() + c.handled()
    for offset in (0, TOPOLOGY_SEQ):
        for building, handled in by_building(rows, offset).items():
            assert last_handling_order(handled) == list(range(15)), f"{building}: {handled}"
    assert any(m == "c" for h in by_building(rows).values() for _, m in h)


async def test_leases_lost_in_a_pause_are_given_up_together(nc: Client) -> None:
    """A pause longer than a lease (a long analysis holding the event loop) loses every
    lease at once: the partitions are stopped together, not one after another (each stop
    waits for its fetch to end: 16 took 48 s, in which SIGTERM could not stop the process),
    and taken again."""
    js = nc.jetstream()
    spec = ConsumerSpec(
        service="pausetest",
        stream=subjects.EVENTS_STREAM,
        subject=subjects.READINGS_STORED_ALL,
        durable="pausetest",
        fetch_timeout_s=0.2,
    )

    async def settle(items: object) -> None:
        return None

    def raw(msg: Msg) -> bytes:
        return msg.data

    held_at_release: list[set[int]] = []

    async def on_release(partition: int) -> None:
        held_at_release.append(set(group.held))

    group = PartitionedConsumers(
        js,
        [JetStreamConsumer(js, spec, raw, settle)],
        lease_s=1.0,
        partitions=4,
        on_release=on_release,
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(group.run(stopping))
    try:
        await eventually("four partitions held", lambda: len(group.held) == 4)
        time.sleep(2.5)  # noqa: ASYNC251 - the pause itself: no lease is renewed meanwhile
        await eventually("the four released", lambda: len(held_at_release) == 4)
        assert held_at_release == [set()] * 4  # all stopped before the first was released
        lost = REGISTRY.get_sample_value("balans_pausetest_partition_leases_lost_total")
        assert lost == 4
        await eventually("the four taken again", lambda: len(group.held) == 4)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


def test_weighted_split_is_even_and_agreed() -> None:
    """Buildings of a few dozen meters each over 16 partitions: dealt by weight, two
    processes get near-equal shares, and every member computes the same split."""
    meters = {b: 20 + (b * 37) % 90 for b in range(1, 21)}
    weights = partition_weights(meters, subjects.EVENT_PARTITIONS)
    members = ["a", "b"]
    split = {m: assigned(members, m, subjects.EVENT_PARTITIONS, weights) for m in members}
    assert split["a"] | split["b"] == set(range(subjects.EVENT_PARTITIONS))
    assert not split["a"] & split["b"]
    shares = [sum(weights[p] for p in split[m]) for m in members]
    assert abs(shares[0] - shares[1]) <= 0.05 * sum(meters.values()), shares
    assert split == {
        m: assigned(members[::-1], m, subjects.EVENT_PARTITIONS, weights) for m in members
    }


def test_the_oldest_member_sorts_first() -> None:
    """The first member in sorted order weighs the buildings: it must be the one that has
    been measuring them longest, whatever the pids (a newcomer's may sort lower)."""
    older = _member_id()
    time.sleep(0.002)
    newer = _member_id()
    assert sorted([newer, older]) == [older, newer]
    assert f"-{os.getpid()}-" in older
