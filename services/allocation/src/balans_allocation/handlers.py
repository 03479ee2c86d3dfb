"""The allocation service's NATS edge: ReadingsStored in, AllocationComputed out."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import structlog
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from balans_allocation.allocator import on_readings_stored
from balans_allocation.metrics import EVENTS
from balans_allocation.settings import AllocationSettings
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored

log = structlog.get_logger("allocation")


async def handle_readings_stored(
    msg: Msg, pool: asyncpg.Pool, js: JetStreamContext, settings: AllocationSettings
) -> None:
    """Compute what the event completed or changed, announce it, then ack (nak on failure)."""
    try:
        event = ReadingsStored.model_validate_json(msg.data)
    except ValidationError as exc:
        EVENTS.labels("invalid").inc()
        log.warning("invalid readings event", subject=msg.subject, error=str(exc))
        await msg.term()
        return
    try:
        async with pool.acquire() as conn:
            announcements = await on_readings_stored(
                conn,
                event.building_id,
                event.hour_from,
                timedelta(hours=settings.allocation_lateness_hours),
                settings.allocation_lookaround_hours,
            )
        for a in announcements:
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
    except Exception as exc:
        EVENTS.labels("failed").inc()
        log.exception("allocation failed", building_id=event.building_id, error=str(exc))
        await msg.nak(delay=30)
        return
    EVENTS.labels("ok").inc()
    await msg.ack()
