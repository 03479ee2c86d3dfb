"""The watermark: which building-hours are complete, what to (re)compute on an event.

A building-hour [h, h+1) needs the registers at its end, h+1. It is *complete* when every
heat channel of the building has reported at or past h+1, or when the freshest channel is
``lateness`` hours past it (a silent channel must not hold the building back; its hours are
estimated and recomputed when it speaks again). Hours before the watermark are done; a
reading that arrives for them triggers a recomputation of the ``lookaround`` hours around
it, and only the hours whose figures change are rewritten and announced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from balans_allocation import storage
from balans_allocation.building import Building, load_building
from balans_allocation.compute import compute_building
from balans_allocation.flags import Flag
from balans_allocation.metrics import COMPUTE_SECONDS, FLAGGED_FLAT_HOURS
from balans_allocation.readings import HOUR

ADVISORY_LOCK_CLASS = 5_0001  # pg_advisory_xact_lock(class, building_id): one writer a building


@dataclass(frozen=True)
class Announcement:
    building_id: int
    hour_from: datetime
    hour_to: datetime
    recomputation: bool


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


async def complete_until(
    conn: asyncpg.Connection, building: Building, since: datetime, lateness: timedelta
) -> datetime | None:
    """The end boundary up to which the building's hours are complete (None: no data)."""
    channels = [(m.module_serial, m.input) for m in building.meters if m.utility == "heat"]
    if not channels:
        return None
    rows = await conn.fetch(
        """select module_serial, input, max(ts) as latest from pulse_readings
           where module_serial = any($1::bigint[]) and ts >= $2 group by 1, 2""",
        sorted({serial for serial, _ in channels}),
        since,
    )
    latest = {(r["module_serial"], r["input"]): r["latest"] for r in rows}
    known = [latest[c] for c in channels if c in latest]
    if not known:
        return None
    freshest = floor_hour(max(known))
    if len(known) == len(channels):
        return max(floor_hour(min(known)), freshest - lateness)
    return freshest - lateness


async def earliest_anchor(
    conn: asyncpg.Connection, building: Building, before: datetime, floor: datetime
) -> datetime:
    """The oldest of the channels' last registers before ``before`` (``floor`` for a channel
    silent since then): a register stored at ``before`` changes the hours back to it."""
    rows = await conn.fetch(
        """select max(p.ts) as anchor
           from unnest($1::bigint[], $2::smallint[]) with ordinality as m(serial, input, i)
           left join pulse_readings p on p.module_serial = m.serial and p.input = m.input
                and p.ts < $3 and p.ts >= $4
           group by m.i""",
        [m.module_serial for m in building.meters],
        [m.input for m in building.meters],
        before,
        floor,
    )
    return min((r["anchor"] or floor for r in rows), default=floor)


def _count_flags(flags: np.ndarray) -> None:
    for flag in Flag:
        n = int(np.count_nonzero(flags & flag))
        if n and flag.name:
            FLAGGED_FLAT_HOURS.labels(flag.name.lower()).inc(n)


async def on_readings_stored(
    conn: asyncpg.Connection,
    building_id: int,
    hour_from: datetime,
    lateness: timedelta,
    lookaround: int,
) -> list[Announcement]:
    """Compute what the stored readings completed or changed; return what to announce."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1, $2)", ADVISORY_LOCK_CLASS, building_id)
        building = await load_building(conn, building_id)
        if building is None or building.flat_ids.size == 0:
            return []
        first = floor_hour(hour_from)
        mark = await storage.watermark(conn, building_id) or first
        anchor = await earliest_anchor(conn, building, first, first - lookaround * HOUR)
        start = min(mark, first - HOUR, anchor)
        end = await complete_until(conn, building, start, lateness)
        if end is None or end <= start:
            return []
        hours = int((end - start) / HOUR)
        with COMPUTE_SECONDS.time():
            result = await compute_building(conn, building, start, hours, lookaround)
            new, recomputed = await storage.write_result(
                conn, building_id, building.flat_ids, result,
                building.methodology.model_dump(),
            )  # fmt: skip
        if end > mark:
            await storage.set_watermark(conn, building_id, end)
    _count_flags(result.allocation.flags)
    announcements = []
    if new:
        announcements.append(Announcement(building_id, new[0], new[-1], False))
    if recomputed:
        announcements.append(Announcement(building_id, recomputed[0], recomputed[-1], True))
    return announcements
