"""The allocation service's NATS edge: ReadingsStored in, AllocationComputed out (through
allocation's outbox, see :mod:`balans_allocation.allocator`).

Events are handled in batches: the events one fetch returns (up to
``BALANS_ALLOCATION_BATCH_EVENTS``) are computed in one transaction
(:func:`on_readings_stored_many`), so many buildings share each database round trip. A
batch that fails is retried building by building, so one bad building cannot hold back the
others: only its events are redelivered (and dead-lettered if they keep failing).

An event whose first hour lies outside the window readings may have
(``CommonSettings.readings_window``, one hour of slack for M-Bus readings, which are dated
at the end of the hour they were received in) is acked without computing, logged and
counted: ingest and the persister refuse such readings, so it can only come from elsewhere,
and computing from 1970 or up to 2106 would allocate arrays for centuries.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog

from balans_allocation.allocator import Announcement, on_readings_stored_many
from balans_allocation.metrics import BATCH_BUILDINGS, REFUSED_EVENTS
from balans_allocation.readings import HOUR
from balans_allocation.settings import AllocationSettings
from balans_core.consumer import Failures
from balans_core.outbox import OutboxRelay
from balans_protocol.messages import ReadingsStored

log = structlog.get_logger("allocation")


async def compute_batch(
    events: Sequence[ReadingsStored],
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    settings: AllocationSettings,
) -> Failures:
    """Compute what the events completed or changed (its announcements go to the outbox in
    the same transaction; the relay is woken to send them); returns the events that failed
    (by position), for the consumer to redeliver."""
    earliest: dict[int, ReadingsStored] = {}
    for event in plausible(events, settings):
        known = earliest.get(event.building_id)
        if known is None or event.hour_from < known.hour_from:
            earliest[event.building_id] = event
    try:
        async with pool.acquire() as conn:
            announcements = await on_readings_stored_many(
                conn,
                {b: e.hour_from for b, e in earliest.items()},
                timedelta(hours=settings.allocation_lateness_hours),
                settings.allocation_lookaround_hours,
            )
    except Exception as exc:
        if len(earliest) == 1:
            log.exception("allocation failed", building_id=next(iter(earliest)), error=str(exc))
            return dict.fromkeys(range(len(events)), exc)
        log.warning("allocation batch failed, retrying building by building", error=str(exc))
        failures: dict[int, BaseException] = {}
        for building_id in earliest:
            positions = [i for i, e in enumerate(events) if e.building_id == building_id]
            failed = await compute_batch([events[i] for i in positions], pool, relay, settings)
            failures |= {positions[i]: error for i, error in failed.items()}
        return failures
    BATCH_BUILDINGS.observe(len(earliest))
    for a in announcements:
        _log(a)
    if announcements:
        relay.wake()
    return {}


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
