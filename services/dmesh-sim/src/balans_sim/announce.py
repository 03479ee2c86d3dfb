"""Announce readings the simulator wrote straight into PostgreSQL.

The persister announces every batch it stores (``ReadingsStored``); the simulator's fast
path writes the backfill without the persister, so it makes the same announcement,
or allocation (and everything after it) would never see the history.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from balans_core.nats import connect_nats
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_protocol.streams import ensure_streams


async def announce_backfill(
    nats_url: str,
    conn: asyncpg.Connection,
    building_codes: list[str],
    hour_from: datetime,
    hour_to: datetime,
    rows: int,
) -> int:
    """Publish one ReadingsStored per building for [hour_from, hour_to]; return how many."""
    ids = await conn.fetch("select id from buildings where code = any($1::text[])", building_codes)
    nc = await connect_nats(nats_url, "sim")
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        share = rows // max(len(ids), 1)
        for row in ids:
            event = ReadingsStored(
                building_id=row["id"], hour_from=hour_from, hour_to=hour_to, rows=share
            )
            await js.publish(subjects.readings_stored(row["id"]), event.model_dump_json().encode())
    finally:
        await nc.drain()
    return len(ids)
