"""The allocation service's NATS edge: ReadingsStored in, AllocationComputed out.

Events are handled in batches: every event waiting when the previous batch finished is
computed in one transaction (:func:`on_readings_stored_many`), so many buildings share
each database round trip. A batch that fails is retried building by building, so one
bad building cannot hold back the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import asyncpg
import structlog
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from balans_allocation.allocator import Announcement, on_readings_stored_many
from balans_allocation.metrics import BATCH_BUILDINGS, EVENTS
from balans_allocation.settings import AllocationSettings
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored

log = structlog.get_logger("allocation")


async def handle_readings_stored(
    msgs: Sequence[Msg], pool: asyncpg.Pool, js: JetStreamContext, settings: AllocationSettings
) -> None:
    """Compute what the events completed or changed, announce it, then ack (nak on failure)."""
    events: list[tuple[Msg, ReadingsStored]] = []
    for msg in msgs:
        try:
            events.append((msg, ReadingsStored.model_validate_json(msg.data)))
        except ValidationError as exc:
            EVENTS.labels("invalid").inc()
            log.warning("invalid readings event", subject=msg.subject, error=str(exc))
            await msg.term()
    if events:
        await _compute_and_ack(events, pool, js, settings)


async def _compute_and_ack(
    events: list[tuple[Msg, ReadingsStored]],
    pool: asyncpg.Pool,
    js: JetStreamContext,
    settings: AllocationSettings,
) -> None:
    earliest: dict[int, ReadingsStored] = {}
    for _, event in events:
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
        await asyncio.gather(*(_announce(js, a) for a in announcements))
    except Exception as exc:
        if len(earliest) > 1:
            log.warning("allocation batch failed, retrying building by building", error=str(exc))
            for building_id in earliest:
                own = [(m, e) for m, e in events if e.building_id == building_id]
                await _compute_and_ack(own, pool, js, settings)
            return
        EVENTS.labels("failed").inc(len(events))
        log.exception("allocation failed", building_id=next(iter(earliest)), error=str(exc))
        await asyncio.gather(*(msg.nak(delay=30) for msg, _ in events))
        return
    BATCH_BUILDINGS.observe(len(earliest))
    EVENTS.labels("ok").inc(len(events))
    await asyncio.gather(*(msg.ack() for msg, _ in events))


async def _announce(js: JetStreamContext, a: Announcement) -> None:
    message = AllocationComputed(
        building_id=a.building_id,
        hour_from=a.hour_from,
        hour_to=a.hour_to,
        recomputation=a.recomputation,
    )
    await js.publish(
        subjects.allocation_computed(a.building_id), message.model_dump_json().encode()
    )
    log.info(
        "allocation computed",
        building_id=a.building_id,
        hour_from=a.hour_from.isoformat(),
        hour_to=a.hour_to.isoformat(),
        recomputation=a.recomputation,
    )
