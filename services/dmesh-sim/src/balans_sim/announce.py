"""Announce readings the simulator wrote straight into PostgreSQL.

The persister announces every batch it stores (``ReadingsStored``); the simulator's fast
path writes the backfill without the persister, so it makes the same announcement,
or allocation (and everything after it) would never see the history.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from balans_core.nats import connect_nats
from balans_db.queries import world
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_protocol.streams import ensure_streams


async def announce_backfill(
    nats_url: str,
    conn: asyncpg.Connection,
    readings_by_building: dict[str, int],
    hour_from: datetime,
    hour_to: datetime,
) -> int:
    """Publish one ReadingsStored per building (code -> readings delivered, counted like the
    persister counts a batch) for [hour_from, hour_to]; return how many were published."""
    ids = await world.building_ids_by_code(conn, list(readings_by_building))
    nc = await connect_nats(nats_url, "sim")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        for row in ids:
            event = ReadingsStored(
                building_id=row["id"],
                hour_from=hour_from,
                hour_to=hour_to,
                rows=readings_by_building[row["code"]],
            )
            await js.publish(subjects.readings_stored(row["id"]), event.model_dump_json().encode())
    finally:
        await nc.drain()
    return len(ids)
