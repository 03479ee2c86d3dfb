"""The allocation service's NATS edge: ReadingsStored in, AllocationComputed out (through
allocation's outbox, see :mod:`balans_allocation.allocator`).

Events are handled in batches: the events one fetch returns (up to
``BALANS_ALLOCATION_BATCH_EVENTS``) are computed together (:func:`on_readings_stored_many`),
so many buildings share each database round trip. The batch's buildings are split into
``BALANS_ALLOCATION_BATCH_SHARES`` shares computed at the same time, each in its own
transaction on its own connection: a batch alternates between PostgreSQL's statements and
this process's kernels and rows, and two shares keep both busy (a building is in one share,
and its lock and watermark are its own, so the shares never wait for each other). A share
holds at least ``BALANS_ALLOCATION_BATCH_SHARE_MIN_BUILDINGS`` buildings: a small batch
(fewer than twice that) is one share, since every share runs the same set of statements
whatever its size. The shares take turns between buildings (each yields to the event loop
before a building's computation and its rows), so one share's statements are in
PostgreSQL while another computes. A share that fails is retried building by building, so
one bad building cannot hold back the others: only its events are redelivered (and
dead-lettered if they keep failing).

An event whose first hour lies outside the window readings may have
(``CommonSettings.readings_window``, one hour of slack for M-Bus readings, which are dated
at the end of the hour they were received in) is acked without computing, logged and
counted: ingest and the persister refuse such readings, so it can only come from elsewhere,
and computing from 1970 or up to 2106 would allocate arrays for centuries.

What a batch cost is noted per building (:class:`balans_core.costs.BuildingCosts`, the event
partitions' weights): the process's CPU from the batch's start to its end (every thread's:
the kernels' parallel loops run on worker threads), apportioned to its buildings by the CPU
of each one's own computation. When batches overlap (``BALANS_ALLOCATION_BATCH_WORKERS``),
the process's CPU meanwhile is divided between them by their buildings
(:class:`balans_core.costs.CpuLedger`), so no second of it is noted twice. The loads, the
rows written and the announcements are done for the whole batch at once and cannot be
timed per building, but they grow with what the computation does (a building's meters
times the hours of its window, its flats times its hours); the computation alone can,
being synchronous.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from balans_allocation.allocator import Announcement, on_readings_stored_many
from balans_allocation.metrics import BATCH_BUILDINGS, REFUSED_EVENTS
from balans_allocation.readings import HOUR
from balans_allocation.settings import AllocationSettings
from balans_core.consumer import Failures
from balans_core.costs import BuildingCosts, CpuLedger
from balans_core.outbox import OutboxRelay
from balans_protocol.messages import ReadingsStored

log = structlog.get_logger("allocation")


async def compute_batch(
    events: Sequence[ReadingsStored],
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    settings: AllocationSettings,
    costs: BuildingCosts | None = None,
    ledger: CpuLedger | None = None,
) -> Failures:
    """Compute what the events completed or changed (its announcements go to the outbox in
    the same transaction; the relay is woken to send them); returns the events that failed
    (by position), for the consumer to redeliver. A batch without failures notes what each
    building cost in ``costs``: its part of the process's CPU in ``ledger`` (the process's
    one, shared by the batches computed at once; none: the batch is alone) apportioned by
    its computations (module docstring)."""
    ledger = ledger if ledger is not None else CpuLedger()
    token = ledger.open(len({e.building_id for e in events}))
    try:
        failures, computed, shares = await _compute_events(
            events, pool, relay, settings, costs, ledger
        )
    finally:
        cpu_s = ledger.close(token)
    if costs is not None and computed:
        costs.note_shared(cpu_s, computed)
        log.info(
            "batch computed",
            events=len(events),
            buildings=len(computed),
            shares=shares,
            cpu_s=round(cpu_s, 4),
            compute_cpu_s=round(sum(computed.values()), 4),
        )
    return failures


async def _compute_events(
    events: Sequence[ReadingsStored],
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    settings: AllocationSettings,
    costs: BuildingCosts | None,
    ledger: CpuLedger,
) -> tuple[Failures, dict[int, float], int]:
    """:func:`compute_batch`'s work: the failures, each computed building's CPU seconds of
    computation (empty when a share failed: the batch's CPU is then not apportioned) and
    the number of shares."""
    earliest: dict[int, ReadingsStored] = {}
    newest: dict[int, datetime] = {}  # building -> the last hour its events stored
    for event in plausible(events, settings):
        known = earliest.get(event.building_id)
        if known is None or event.hour_from < known.hour_from:
            earliest[event.building_id] = event
        newest[event.building_id] = max(event.hour_to, newest.get(event.building_id, event.hour_to))
    buildings = sorted(earliest)
    shares = split_shares(buildings, settings)
    computed = dict.fromkeys(buildings, 0.0)  # building -> its computation's CPU seconds
    outcomes = await asyncio.gather(
        *(
            _compute_share(share, earliest, newest, pool, relay, settings, computed)
            for share in shares
        ),
        return_exceptions=True,
    )
    failures: dict[int, BaseException] = {}
    for share, outcome in zip(shares, outcomes, strict=True):
        if not isinstance(outcome, BaseException):
            BATCH_BUILDINGS.observe(len(share))
            for a in outcome:
                _log(a)
            continue
        if not isinstance(outcome, Exception):
            raise outcome  # cancelled, or the process is stopping
        positions = [i for i, e in enumerate(events) if e.building_id in share]
        if len(earliest) == 1:
            log.error(
                "allocation failed", building_id=share[0], error=str(outcome), exc_info=outcome
            )
            failures |= dict.fromkeys(positions, outcome)
            continue
        log.warning(
            "allocation batch failed, retrying building by building",
            buildings=len(share),
            error=str(outcome),
        )
        for building_id in share:
            mine = [i for i in positions if events[i].building_id == building_id]
            failed = await compute_batch(
                [events[i] for i in mine], pool, relay, settings, costs, ledger
            )
            failures |= {mine[i]: error for i, error in failed.items()}
    if any(isinstance(o, BaseException) for o in outcomes):
        computed = {}
    return failures, computed, len(shares)


def split_shares(buildings: list[int], settings: AllocationSettings) -> list[list[int]]:
    """The batch's buildings dealt into ``BALANS_ALLOCATION_BATCH_SHARES`` shares, fewer when
    a share would hold less than ``BALANS_ALLOCATION_BATCH_SHARE_MIN_BUILDINGS`` (each share
    pays a fixed set of statements, which a small share does not earn back in overlap)."""
    n = min(
        settings.allocation_batch_shares,
        len(buildings) // settings.allocation_batch_share_min_buildings,
    )
    n = max(n, 1) if buildings else 0
    return [buildings[k::n] for k in range(n)]


async def _compute_share(
    buildings: list[int],
    earliest: dict[int, ReadingsStored],
    newest: dict[int, datetime],
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    settings: AllocationSettings,
    computed: dict[int, float],
) -> list[Announcement]:
    """One share of a batch in its own transaction on its own connection (each computed
    building's CPU seconds into ``computed``); the relay is woken at its commit, so its
    announcements go out while the other shares still work (JetStream stores each one
    durably, which takes a while for an hour's worth)."""
    async with pool.acquire() as conn:
        announcements = await on_readings_stored_many(
            conn,
            {b: earliest[b].hour_from for b in buildings},
            timedelta(hours=settings.allocation_lateness_hours),
            settings.allocation_lookaround_hours,
            computed,
            {b: newest[b] for b in buildings},
        )
    if announcements:
        relay.wake()
    return announcements


def plausible(
    events: Sequence[ReadingsStored], settings: AllocationSettings
) -> list[ReadingsStored]:
    """The events whose first hour a reading can have now; the others are logged, counted."""
    first_ok, last_ok = settings.readings_window(datetime.now(UTC))
    kept = []
    for event in events:
        if first_ok - HOUR <= event.hour_from <= last_ok + HOUR:
            kept.append(event)
            continue
        check = "future" if event.hour_from > last_ok else "too_old"
        REFUSED_EVENTS.labels(check).inc()
        log.error(
            "implausible ReadingsStored ignored",
            building_id=event.building_id,
            hour_from=event.hour_from.isoformat(),
            check=check,
        )
    return kept


def _log(a: Announcement) -> None:
    log.info(
        "allocation computed",
        building_id=a.building_id,
        hour_from=a.hour_from.isoformat(),
        hour_to=a.hour_to.isoformat(),
        recomputation=a.recomputation,
    )
