"""A stage's processes split the buildings between them: partitions, leases, handover.

The EVENTS stream stores each building's events under its partition
(``balans.events.<kind>.<P>.<building>``, NATS's deterministic ``partition()`` subject
transform, :mod:`balans_protocol.streams`). Each partition has its own durable pull
consumer (``<durable>-pNN``, the durable of the group's first consumer), so a partition's
events are delivered in order and its progress survives whoever consumes it. A service
that consumes several kinds (balance: allocation, topology and stored readings events)
takes them all through that one consumer (``filter_subjects``) and hands each message to
the handler of its kind: every replicated consumer is a raft group whose heartbeats cost
the cluster CPU all the time, idle or not (on three nodes about 0.0008 of a core each,
0.05 for 64), so a stage's partitions cost 16 consumers, not 16 per kind.

A process consumes only the partitions it holds a lease on; so no two processes handle one
building at once, a building's events stay in order, and a building stays with one process
(its in-memory state stays valid) until the set of processes changes.

Leases live in a JetStream key-value bucket per consumer group
(``balans_partitions_<durable>``, the durable of the first consumer), replicated as the
streams are (``BALANS_NATS_STREAM_REPLICAS``: on a cluster, losing the node that held a
one-replica bucket would stall every lease), whose keys expire ``lease_s`` after their
last write:

- ``member.<id>``: every process writes its own key four times per lease; the live
  members are the keys present, looked at every round (at least every 2 s, so a process
  that joins or stops is noticed quickly however long the leases are). Partition ``p``
  belongs to the ``p % n``-th of the ``n`` members in sorted order (every member computes
  the same split from the same keys), or, when the service weighs its buildings, the
  partitions are dealt heaviest first to the member with the least weight so far, so the
  processes finish an hour together (:func:`assigned`).
- ``weights``: each partition's weight (the sum of its buildings', from the service's
  ``weigh``: what each building's work cost the process, :mod:`balans_core.costs`),
  written by the first member in sorted order whenever the members change and kept alive
  with its renewals; the others read it every round and keep the last they read if it is
  missing. A member's id begins with its start time, so the first is the oldest: the one
  that has measured the most buildings (a newcomer has measured none, and would weigh them
  by their size alone). With a few dozen buildings, 16 partitions differ by a factor of
  several; with thousands they are nearly even.
- ``lease.<p>``: the holder's id, created with compare-and-set (``create`` / ``update``
  with the last revision) and renewed four times per lease (each renewal is a write
  every node of a cluster stores). A process that gives a partition up
  (another member joined, or it stops) first lets its fetchers settle what they hold, then
  writes an empty value: the next holder starts right after the last acknowledged event.
  A process that dies leaves its lease to expire; the next holder then rewinds the
  partition's consumers to their acknowledged floor, so the dead process's unacknowledged
  events come again first and in order (handlers are idempotent).

Within a process, one fetcher per held partition pulls a batch, splits it by kind and waits
until every part is settled; ``spec.workers`` handler loops per kind take the parts waiting (whole
batches, up to ``spec.batch`` messages, waiting up to ``spec.batch_linger_s`` for more to
arrive after the first, and no longer than ``spec.batch_quiet_s`` after the last) and hand them
to :meth:`JetStreamConsumer.handle`, so a service still sees batches across buildings
(allocation's one load, one compute, one write per batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge
from pydantic import TypeAdapter, ValidationError

from balans_core.consumer import (
    ConsumerSpec,
    JetStreamConsumer,
    ensure_consumer,
    fetch_waiting,
)
from balans_protocol import subjects

log = structlog.get_logger("partitions")

IDLE_WAIT_GROWTH = 3
"""An idle partition's fetch waits up to this many times ``spec.fetch_timeout_s`` (doubling
from it after each empty fetch): a waiting fetch gets a message the moment it is stored, so
the wait costs no latency, but every fetch that ends empty is two requests to the partition
consumer's leader and its answers. On a three-node cluster, four processes idle on 48
partitions (with their lease rounds) took NATS 0.15 of a core with one-second fetches, 0.10
with these; the price is that a partition given up (a new member, a stop) waits for its
fetch to end, up to this many times longer."""
ROUNDS_PER_LEASE = 4
MAX_ROUND_S = 2.0  # long leases still notice a new member (or a released lease) quickly


def partition_spec(specs: Sequence[ConsumerSpec], partition: int) -> ConsumerSpec:
    """The one durable consumer of a partition for every kind ``specs`` consume: named
    after the first, taking each one's subject in that partition, with room for all their
    unacknowledged messages and the longest of their acknowledgement waits; a fetch asks
    for the largest of their batches."""
    first = specs[0]
    return replace(
        first,
        durable=f"{first.durable}-p{partition:02d}",
        subject=subjects.in_partition(first.subject, partition),
        more_subjects=tuple(subjects.in_partition(s.subject, partition) for s in specs[1:]),
        batch=max(s.batch for s in specs),
        max_ack_pending=sum(s.max_ack_pending for s in specs),
        ack_wait_s=max(s.ack_wait_s for s in specs),
        fetch_timeout_s=min(s.fetch_timeout_s for s in specs),
    )


def partition_durables(durable: str, partitions: int = subjects.EVENT_PARTITIONS) -> list[str]:
    """The names of every partition's durable consumer of ``durable`` (for operators and
    benchmarks that wait for a stage to drain)."""
    return [f"{durable}-p{p:02d}" for p in range(partitions)]


def bucket_name(durable: str) -> str:
    """The lease bucket of the processes sharing ``durable`` (a consumer group: two groups
    of one service, e.g. a test's and a deployment's, never split partitions between them)."""
    return f"balans_partitions_{durable}"


async def lease_bucket(
    js: JetStreamContext, durable: str, service: str, lease_s: float, replicas: int | None
) -> KeyValue:
    """The lease bucket of ``durable``'s group, created if missing (keys living ``lease_s``).

    ``replicas`` as :func:`balans_protocol.streams.ensure_streams` takes it: the bucket gets
    that many, an existing one included (one made before the cluster grew is raised);
    ``None`` creates it with 1 and leaves an existing bucket's replicas as they are."""
    name = bucket_name(durable)
    try:
        kv = await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(
            KeyValueConfig(
                bucket=name,
                description=f"Which {service} process holds which event partition",
                ttl=lease_s,
                storage=StorageType.FILE,
                replicas=replicas or 1,
            )
        )
    config = (await kv.status()).stream_info.config
    if replicas is not None and config.num_replicas != replicas:
        log.info(
            "lease bucket replicas changed",
            bucket=name,
            replicas=replicas,
            were=config.num_replicas,
        )
        await js.update_stream(replace(config, num_replicas=replicas))
    return kv


async def lease_holders(js: JetStreamContext, durable: str) -> dict[int, str]:
    """partition -> the process whose lease it is, for the group of ``durable`` (absent:
    free; empty before any process of the group started). For operators and benchmarks."""
    try:
        kv = await js.key_value(bucket_name(durable))
    except BucketNotFoundError:
        return {}
    held: dict[int, str] = {}
    for partition in range(subjects.EVENT_PARTITIONS):
        try:
            entry = await kv.get(f"lease.{partition}")
        except KeyNotFoundError:
            continue
        if entry.value:
            held[partition] = entry.value.decode()
    return held


Weigh = Callable[[], Awaitable[Mapping[int, float]]]
"""A service's weights: building id -> how much work its events make (absent: none)."""
WEIGHTS_KEY = "weights"
_WEIGHTS = TypeAdapter(list[float])


def partition_weights(buildings: Mapping[int, float], partitions: int) -> list[float]:
    """Each partition's weight: the sum of its buildings'."""
    weights = [0.0] * partitions
    for building, weight in buildings.items():
        weights[subjects.partition_of(building, partitions)] += weight
    return weights


def assigned(
    members: Sequence[str], me: str, partitions: int, weights: Sequence[float] | None = None
) -> set[int]:
    """The partitions ``me`` should hold among ``members``: round robin in sorted order, or
    with ``weights`` (one per partition) the heaviest first, each to the member with the
    least weight so far (then the fewest partitions, then the first in sorted order)."""
    ordered = sorted(set(members) | {me})
    index = ordered.index(me)
    if weights is None or len(weights) != partitions:
        return {p for p in range(partitions) if p % len(ordered) == index}
    loads = [(0.0, 0)] * len(ordered)
    mine: set[int] = set()
    for p in sorted(range(partitions), key=lambda p: (-weights[p], p)):
        k = min(range(len(ordered)), key=lambda k: (*loads[k], k))
        loads[k] = (loads[k][0] + weights[p], loads[k][1] + 1)
        if k == index:
            mine.add(p)
    return mine


async def live_members(js: JetStreamContext, kv: KeyValue, durable: str) -> list[str]:
    """The live members of ``durable``'s group: the member keys its bucket's stream holds
    (one stream info; the ordered consumer ``kv.keys()`` makes and deletes on every call
    cost the cluster more than a round's lease writes), less the ones a stopped member
    deleted (a direct get each, answered by any replica)."""
    bucket = bucket_name(durable)
    prefix = f"$KV.{bucket}."
    info = await js.stream_info(f"KV_{bucket}", subjects_filter=f"{prefix}member.>")
    members = []
    for subject in sorted(info.state.subjects or {}):
        key = subject.removeprefix(prefix)
        with contextlib.suppress(KeyNotFoundError, KeyDeletedError):
            await kv.get(key)
            members.append(key.removeprefix("member."))
    return members


async def read_weights(kv: KeyValue) -> list[float] | None:
    """The partitions' weights the group's first member wrote (None: none, or unreadable)."""
    try:
        entry = await kv.get(WEIGHTS_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return None
    try:
        return _WEIGHTS.validate_json(entry.value or b"")
    except ValidationError as exc:
        log.error("partition weights unreadable", error=str(exc))
        return None


async def intended_holders(js: JetStreamContext, durable: str) -> dict[int, str]:
    """partition -> the member that should hold it, from the members and weights in the
    group's bucket now (for benchmarks waiting for a split to settle; empty before any
    process of the group started)."""
    try:
        kv = await js.key_value(bucket_name(durable))
    except BucketNotFoundError:
        return {}
    members = await live_members(js, kv, durable)
    weights = await read_weights(kv)
    return {p: m for m in members for p in assigned(members, m, subjects.EVENT_PARTITIONS, weights)}


def _member_id() -> str:
    """``<start time in ms>-<host>-<pid>-<random>``: in sorted order the oldest first."""
    host = "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname())
    return f"{time.time_ns() // 1_000_000:013d}-{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_METRICS: dict[str, tuple[Gauge, Counter, Counter]] = {}


def _metrics(service: str) -> tuple[Gauge, Counter, Counter]:
    if service not in _METRICS:
        _METRICS[service] = (
            Gauge(
                f"balans_{service}_partitions_held",
                "Event partitions this process holds a lease on (consumes).",
            ),
            Counter(
                f"balans_{service}_partition_leases_lost_total",
                "Leases this process lost before giving them up (it was too slow to renew "
                "them, or NATS was unreachable for longer than a lease): another process "
                "took the partition.",
            ),
            Counter(
                f"balans_{service}_partition_weighing_failures_total",
                "Times this process, first of its group, could not weigh its buildings for "
                "the partitions' split (the database away): the last weights stay, it tries "
                "again next round.",
            ),
        )
    return _METRICS[service]


@dataclass
class _Batch:
    msgs: list[Msg]
    settled: asyncio.Event = field(default_factory=asyncio.Event)


class _Lane:
    """One kind's side of a process: the partitions' fetchers fill its queue with the
    messages of its subject, its handler loops empty it."""

    def __init__(self, consumer: JetStreamConsumer[Any]) -> None:
        self.consumer = consumer
        self.queue: asyncio.Queue[_Batch] = asyncio.Queue()
        self.prefix = consumer.spec.subject.removesuffix(">")  # balans.events.<kind>.
        # one handler loop gathers a batch at a time: while one lingers, the parts that come
        # join its batch instead of starting another loop's (a queue hands each part to the
        # loop that has waited longest)
        self.forming = asyncio.Lock()

    def takes(self, msg: Msg) -> bool:
        return msg.subject.startswith(self.prefix)

    async def handle(self, drained: asyncio.Event) -> None:
        """Hand waiting batches over until ``drained`` (every fetcher has finished)."""
        while True:
            async with self.forming:
                batches = await self._gather()
            if batches is None:
                if drained.is_set() and self.queue.empty():
                    return
                continue
            try:
                await self.consumer.handle([m for b in batches for m in b.msgs])
            finally:
                for batch in batches:
                    batch.settled.set()

    async def _gather(self) -> list[_Batch] | None:
        """The parts of one batch: the first to come (None if none comes within 0.2 s), and
        what joins it, up to ``spec.batch`` messages, ``spec.batch_linger_s`` after the first
        and ``spec.batch_quiet_s`` after the last."""
        spec = self.consumer.spec
        try:
            first = await asyncio.wait_for(self.queue.get(), timeout=0.2)
        except TimeoutError:
            return None
        batches = [first]
        size = len(first.msgs)
        until = asyncio.get_running_loop().time() + spec.batch_linger_s
        while size < spec.batch:
            if self.queue.empty():  # the other partitions' fetches may be on their way
                left = until - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                try:
                    batches.append(
                        await asyncio.wait_for(
                            self.queue.get(), timeout=min(left, spec.batch_quiet_s)
                        )
                    )
                except TimeoutError:
                    break
            else:
                batches.append(self.queue.get_nowait())
            size += len(batches[-1].msgs)
        return batches


async def _fetch(
    lanes: Sequence[_Lane], spec: ConsumerSpec, js: JetStreamContext, stop: asyncio.Event
) -> None:
    """Fetch one partition's consumer ``spec`` until ``stop``: each batch split by kind
    into its lanes' queues (in order within a kind), the next fetched once all are settled."""
    sub = await js.pull_subscribe_bind(spec.durable, stream=spec.stream)
    wait_s = spec.fetch_timeout_s
    try:
        while not stop.is_set():
            try:
                msgs = await fetch_waiting(sub, spec.batch, wait_s)
            except TimeoutError:  # nothing waiting: wait longer next time
                wait_s = min(wait_s * 2, spec.fetch_timeout_s * IDLE_WAIT_GROWTH)
                continue
            except NatsError as exc:
                log.warning("fetch failed", consumer=spec.durable, error=repr(exc))
                await asyncio.sleep(spec.fetch_timeout_s)
                continue
            wait_s = spec.fetch_timeout_s
            parts = []  # the consumer's filters admit only the lanes' subjects
            for lane in lanes:
                mine = [m for m in msgs if lane.takes(m)]
                if mine:
                    parts.append(_Batch(mine))
                    await lane.queue.put(parts[-1])
            await asyncio.gather(*(part.settled.wait() for part in parts))
    finally:
        await sub.unsubscribe()


@dataclass
class _Held:
    revision: int
    stop: asyncio.Event
    fetcher: asyncio.Task[None]


class PartitionedConsumers:
    """Consume ``consumers`` (unpartitioned specs: subject ``balans.events.<kind>.>``) for
    the partitions this process holds, and keep its share of them as processes come and go.

    ``on_release(partition)`` is awaited after a partition's in-flight batches are settled
    and before another process may take it (a cache of its buildings is stale from then on).
    ``weigh`` (optional) weighs the buildings for a split by weight instead of by count
    (module docstring, ``weights``).
    """

    def __init__(
        self,
        js: JetStreamContext,
        consumers: Sequence[JetStreamConsumer[Any]],
        *,
        lease_s: float,
        replicas: int | None = None,
        partitions: int = subjects.EVENT_PARTITIONS,
        member: str | None = None,
        on_release: Callable[[int], Awaitable[None]] | None = None,
        weigh: Weigh | None = None,
    ) -> None:
        self.js = js
        self.service = consumers[0].spec.service
        self.lanes = [_Lane(c) for c in consumers]
        self.lease_s = lease_s
        self.renew_s = lease_s / ROUNDS_PER_LEASE
        self.round_s = min(self.renew_s, MAX_ROUND_S)
        self.renewed_at = float("-inf")
        self.replicas = replicas
        self.partitions = partitions
        self.member = member or _member_id()
        self.on_release = on_release
        self.held: dict[int, _Held] = {}
        self.held_gauge, self.lost, self.weighing_failed = _metrics(self.service)
        self.weigh = weigh
        self.weights: list[float] | None = None  # the last read or written
        self.weighed_for: list[str] = []  # the members when this process last weighed
        self.durable = consumers[0].spec.durable

    async def run(self, stopping: asyncio.Event) -> None:
        """Hold, consume and hand over partitions until ``stopping``; then settle, release
        every lease and leave, so the other processes take over at once."""
        kv = await lease_bucket(self.js, self.durable, self.service, self.lease_s, self.replicas)
        ttl = (await kv.status()).ttl
        if ttl and ttl < self.lease_s:  # the bucket was made with shorter leases: keep up
            self.renew_s = ttl / ROUNDS_PER_LEASE
            self.round_s = min(self.renew_s, MAX_ROUND_S)
        await self._drop_per_kind_consumers()
        for p in range(self.partitions):
            await ensure_consumer(self.js, self._spec(p))
        drained = asyncio.Event()
        handlers = [
            asyncio.create_task(lane.handle(drained))
            for lane in self.lanes
            for _ in range(lane.consumer.spec.workers)
        ]
        try:
            while not stopping.is_set():
                try:
                    await self._round(kv)
                except NatsError as exc:  # NATS away: leases expire, fetchers keep trying
                    log.warning("partition round failed", service=self.service, error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.round_s)
        finally:
            await self._give_up(kv, list(self.held))
            drained.set()
            await asyncio.gather(*handlers)
            try:
                await kv.delete(f"member.{self.member}")
            except NatsError as exc:
                log.warning("membership not withdrawn", service=self.service, error=repr(exc))

    def _spec(self, partition: int) -> ConsumerSpec:
        return partition_spec([lane.consumer.spec for lane in self.lanes], partition)

    async def _drop_per_kind_consumers(self) -> None:
        """Delete the per-kind partition consumers of the kinds after the first that
        versions before the shared one made (``<durable of the kind>-pNN``): idle, they
        would still cost the cluster their raft heartbeats. Their kinds' unacknowledged
        events are not carried over: stop the stage with its events drained to upgrade."""
        old = {
            f"{lane.consumer.spec.durable}-p{p:02d}"
            for lane in self.lanes[1:]
            for p in range(self.partitions)
        }
        if not old:
            return
        stream = self.lanes[0].consumer.spec.stream
        for info in await self.js.consumers_info(stream):
            if info.name in old:
                with contextlib.suppress(NotFoundError):  # another process was quicker
                    await self.js.delete_consumer(stream, info.name)
                log.info("per-kind partition consumer removed", consumer=info.name)

    async def _follow_weights(self, kv: KeyValue, members: list[str]) -> None:
        """The first member weighs the buildings when the members change (and writes the
        weights); every other reads what it wrote."""
        if members[0] != self.member:
            self.weighed_for = []
            self.weights = await read_weights(kv) or self.weights
            return
        if members == self.weighed_for:
            return
        assert self.weigh is not None
        try:
            weights = partition_weights(await self.weigh(), self.partitions)
        except Exception as exc:  # the database away: the last weights stay
            self.weighing_failed.inc()
            log.error("buildings not weighed", service=self.service, error=repr(exc))
            return
        await kv.put(WEIGHTS_KEY, _WEIGHTS.dump_json(weights))
        self.weights, self.weighed_for = weights, members

    async def _round(self, kv: KeyValue) -> None:
        """Renew what we hold and heartbeat (when due), give up what is no longer ours,
        take what is."""
        now = asyncio.get_running_loop().time()
        if now - self.renewed_at >= self.renew_s:
            await self._renew(kv)
            self.renewed_at = now
        members = sorted(set(await live_members(self.js, kv, self.durable)) | {self.member})
        if self.weigh is not None:
            await self._follow_weights(kv, members)
        wanted = assigned(members, self.member, self.partitions, self.weights)
        failed = {p for p, held in self.held.items() if held.fetcher.done()}
        for partition in failed:  # given up below and taken again in the next round
            log.error("partition fetcher ended", service=self.service, partition=partition)
        await self._give_up(kv, sorted((set(self.held) - wanted) | failed))
        for partition in sorted(wanted - set(self.held)):
            await self._take(kv, partition)
        self.held_gauge.set(len(self.held))

    async def _renew(self, kv: KeyValue) -> None:
        """Renew every lease we hold, then our membership; the partitions whose leases
        expired (and may be another process's by now) are stopped at once, together.

        Together: stopping one waits for its fetch to end (up to ``IDLE_WAIT_GROWTH`` fetch
        timeouts), and a pause longer than a lease (a long analysis holding the event loop,
        a loaded host) loses every lease at once; stopped one after another, 16 partitions
        took 48 s, in which the process neither consumed nor could stop on SIGTERM."""
        lost: list[int] = []
        for partition in sorted(self.held):
            held = self.held[partition]
            try:
                held.revision = await kv.update(
                    f"lease.{partition}", self.member.encode(), last=held.revision
                )
            except KeyWrongLastSequenceError:
                if await self._still_ours(kv, partition):
                    continue
                # expired and maybe taken by another: stop fetching at once, keep off it
                held.stop.set()
                self.lost.inc()
                log.error("partition lease lost", service=self.service, partition=partition)
                lost.append(partition)
        await self._stop(lost)
        await kv.put(f"member.{self.member}", b"")
        if self.weighed_for and self.weights is not None:  # ours: keep them from expiring
            await kv.put(WEIGHTS_KEY, _WEIGHTS.dump_json(self.weights))

    async def _still_ours(self, kv: KeyValue, partition: int) -> bool:
        """After a renewal failed on its revision: whether the lease is ours all the same (an
        earlier renewal reached the server but its answer was lost); if so, keep its
        revision."""
        try:
            entry = await kv.get(f"lease.{partition}")
        except KeyNotFoundError:
            return False
        if entry.value != self.member.encode() or entry.revision is None:
            return False
        self.held[partition].revision = entry.revision
        return True

    async def _take(self, kv: KeyValue, partition: int) -> None:
        key = f"lease.{partition}"
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:  # never held, or its holder died and the lease expired
            entry = None
        try:
            if entry is None:
                revision = await kv.create(key, self.member.encode())
                await self._rewind(partition)
            elif not entry.value or entry.value == self.member.encode():
                # given up cleanly, or ours from before (a renewal whose answer was lost)
                revision = await kv.update(key, self.member.encode(), last=entry.revision)
            else:  # its holder has not let go yet; it will, or its lease expires
                return
        except KeyWrongLastSequenceError:  # another process was quicker
            return
        stop = asyncio.Event()
        fetcher = asyncio.create_task(_fetch(self.lanes, self._spec(partition), self.js, stop))
        self.held[partition] = _Held(revision, stop, fetcher)
        log.info("partition taken", service=self.service, partition=partition, member=self.member)

    async def _rewind(self, partition: int) -> None:
        """After a holder died: redeliver from the acknowledged floor, in order."""
        spec = self._spec(partition)
        try:
            info = await self.js.consumer_info(spec.stream, spec.durable)
        except NotFoundError:
            return
        if not info.num_ack_pending or info.ack_floor is None:
            return
        config = spec.consumer_config()
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = info.ack_floor.stream_seq + 1
        await self.js.delete_consumer(spec.stream, spec.durable)
        await self.js.add_consumer(spec.stream, config)
        log.warning(
            "partition rewound after its holder died",
            consumer=spec.durable,
            from_seq=config.opt_start_seq,
            unacknowledged=info.num_ack_pending,
        )

    async def _stop(self, partitions: Sequence[int]) -> dict[int, int]:
        """Stop fetching ``partitions`` (together) once what they hold is settled; return
        the revision of each one's lease."""
        stopped = {p: self.held.pop(p) for p in partitions}
        for held in stopped.values():
            held.stop.set()
        await asyncio.gather(*(held.fetcher for held in stopped.values()), return_exceptions=True)
        for partition in stopped:
            if self.on_release is not None:
                await self.on_release(partition)
        return {p: held.revision for p, held in stopped.items()}

    async def _give_up(self, kv: KeyValue, partitions: Sequence[int]) -> None:
        """Stop, then release the leases: the next holder starts after what we settled."""
        if not partitions:
            return
        for partition, revision in (await self._stop(partitions)).items():
            try:
                await kv.update(f"lease.{partition}", b"", last=revision)
            except (KeyWrongLastSequenceError, NatsError) as exc:  # it expires by itself
                log.warning("partition lease not released", partition=partition, error=repr(exc))
                continue
            log.info("partition given up", service=self.service, partition=partition)
