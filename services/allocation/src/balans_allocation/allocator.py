"""The watermark: which building-hours are complete, what to (re)compute on an event.

A building-hour [h, h+1) needs the registers at its end, h+1. It is *complete* when every
heat channel of the building has reported at or past h+1, or when the freshest channel is
``lateness`` hours past it (a silent channel must not hold the building back; its hours are
estimated and recomputed when it speaks again), and never later than the present hour: an
hour that has not ended cannot be complete, whatever time a register claims (one reading
dated two years ahead once moved the watermark, and billing with it, two years on). Hours
before the watermark are done; a reading that arrives for them triggers a recomputation of
the ``lookaround`` hours around it, and only the hours whose figures change are rewritten
and announced. The announcements (``AllocationComputed``) are written to allocation's outbox
in the transaction that writes the hours, so a crash after the commit loses none (the
redelivered event would find nothing left to change, and announce nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from balans_allocation import recent, storage
from balans_allocation.building import Building, load_buildings
from balans_allocation.compute import Job, compute_buildings
from balans_allocation.flags import Flag
from balans_allocation.metrics import COMPUTE_SECONDS, FLAGGED_FLAT_HOURS
from balans_allocation.readings import HOUR
from balans_allocation.recent import Recent
from balans_core import outbox
from balans_db.queries import ingest, world
from balans_physics.water import property_tables
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed

ADVISORY_LOCK_CLASS = 5_0001  # pg_advisory_xact_lock(class, building_id): one writer a building


OUTBOX = "allocation_outbox"  # balans_db.tables.allocation_outbox, sent by the relay


@dataclass(frozen=True)
class Announcement:
    building_id: int
    hour_from: datetime
    hour_to: datetime
    recomputation: bool

    def message(self) -> AllocationComputed:
        return AllocationComputed(
            building_id=self.building_id,
            hour_from=self.hour_from,
            hour_to=self.hour_to,
            recomputation=self.recomputation,
        )


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


async def complete_until(
    conn: asyncpg.Connection,
    buildings: Sequence[Building],
    since: dict[int, datetime],
    lateness: timedelta,
    known: dict[int, Recent] | None = None,
) -> dict[int, datetime]:
    """The end boundary up to which each building's hours are complete (absent: no data).
    The newest registers come from ``known`` where its rows settle them, else from one
    query for the rest."""
    known = known or {}
    channels = {  # a meter replaced in an exchange no longer reports: it holds nobody back
        b.id: sorted(
            {(m.module_serial, m.input, k) for k, m in enumerate(b.meters)
             if m.utility == "heat" and m.valid_to is None}
        )
        for b in buildings
    }  # fmt: skip
    latest: dict[tuple[int, int, int], datetime] = {}
    wanted = []
    for b, chs in channels.items():
        for serial, input_, k in chs:
            settled, ts = known[b].latest(k, since[b]) if b in known else (False, None)
            if not settled:
                wanted.append((b, serial, input_))
            elif ts is not None:
                latest[(b, serial, input_)] = ts
    if wanted:
        wanted = sorted(set(wanted))
        asked = [b for b in since if any(w[0] == b for w in wanted)]
        rows = await ingest.latest_registers(
            conn,
            *_columns(wanted, 3),
            asked,
            [since[b] for b in asked],
            min(since[b] for b in asked),
            floor_hour(datetime.now(UTC)) + recent.AHEAD,
        )
        latest |= {(b, s, i): ts for b, s, i, ts in rows}
    present = floor_hour(datetime.now(UTC))
    ends = {}
    for b, chs in channels.items():
        distinct = {(s, i) for s, i, _ in chs}
        known_ts = [latest[(b, *c)] for c in distinct if (b, *c) in latest]
        if not known_ts:
            continue
        freshest = floor_hour(max(known_ts))
        if len(known_ts) == len(distinct):
            ends[b] = max(floor_hour(min(known_ts)), freshest - lateness)
        else:
            ends[b] = freshest - lateness
        ends[b] = min(ends[b], present)
    return ends


async def earliest_anchors(
    conn: asyncpg.Connection,
    buildings: Sequence[Building],
    before: dict[int, datetime],
    lookaround: int,
    known: dict[int, Recent] | None = None,
) -> dict[int, datetime]:
    """Per building, the oldest of its channels' last registers before ``before`` (but not
    older than ``lookaround`` hours before it, the floor also taken for a channel silent
    since then): a register stored at ``before`` changes the hours back to it. From
    ``known`` where its rows settle it, else from one query for the rest."""
    floor = {b.id: before[b.id] - lookaround * HOUR for b in buildings}
    anchors: dict[int, datetime | None] = {
        b.id: known[b.id].anchor(before[b.id], floor[b.id]) if known and b.id in known else None
        for b in buildings
    }
    asked = [b for b in buildings if anchors[b.id] is None]
    if asked:
        rows = await ingest.earliest_anchors(
            conn,
            *_columns([(b.id, m.module_serial, m.input) for b in asked for m in b.meters], 3),
            [b.id for b in asked],
            [floor[b.id] for b in asked],
            [before[b.id] for b in asked],
        )
        anchors |= {r["building_id"]: r["anchor"] for r in rows}
    return {b.id: anchors.get(b.id) or floor[b.id] for b in buildings}


def _columns(rows: list[tuple], width: int) -> list[list]:
    """Rows of ``width`` fields as the column lists an ``unnest`` of arrays takes."""
    return [[row[i] for row in rows] for i in range(width)]


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
    """:func:`on_readings_stored_many` for one event."""
    return await on_readings_stored_many(conn, {building_id: hour_from}, lateness, lookaround)


async def on_readings_stored_many(
    conn: asyncpg.Connection,
    events: dict[int, datetime],
    lateness: timedelta,
    lookaround: int,
    compute_s: dict[int, float] | None = None,
    newest: dict[int, datetime] | None = None,
) -> list[Announcement]:
    """Compute what stored readings completed or changed in many buildings (building id ->
    earliest hour stored) in one transaction, each query and write covering all of them;
    return what to announce. Each building is locked, watermarked and recomputed exactly as
    if it were handled alone. ``compute_s`` (optional) gets each computed building's CPU
    seconds of computation (what the partitions' weights apportion a batch's CPU by).
    ``newest`` (optional): per building, the last hour its events stored; a building caught
    up over many hours skips the read of its channels' newest registers
    (:func:`balans_allocation.recent.worth_reading`), which could not settle it."""
    async with conn.transaction():
        # ascending order: two instances locking overlapping batches cannot deadlock
        await conn.execute(
            "select pg_advisory_xact_lock($1, b) from unnest($2::int[]) as b order by b",
            ADVISORY_LOCK_CLASS,
            sorted(events),
        )
        loaded = await load_buildings(conn, list(events))
        buildings = [b for b in loaded.values() if b.flat_ids.size]
        first = {b.id: floor_hour(events[b.id]) for b in buildings}
        marks = await storage.watermarks(conn, list(first))
        recent_ones = [
            b
            for b in buildings
            if recent.worth_reading(first[b.id], marks.get(b.id), (newest or {}).get(b.id))
        ]
        known = await recent.load(conn, recent_ones, first, lookaround)
        anchors = await earliest_anchors(conn, buildings, first, lookaround, known)
        starts = {b: min(marks.get(b, f), f - HOUR, anchors[b]) for b, f in first.items()}
        ends = await complete_until(conn, buildings, starts, lateness, known)
        jobs = [
            Job(b, starts[b.id], int((ends[b.id] - starts[b.id]) / HOUR))
            for b in buildings
            if b.id in ends and ends[b.id] > starts[b.id]
        ]
        if not jobs:
            return []
        moved = {  # a building's first watermark too (events hour by hour end at their first)
            j.building.id: ends[j.building.id]
            for j in jobs
            if j.building.id not in marks or ends[j.building.id] > marks[j.building.id]
        }
        with COMPUTE_SECONDS.time():
            results = await compute_buildings(conn, jobs, lookaround, known)
            changed = await storage.write_results(
                conn,
                [
                    storage.Written(j.building.id, j.building.flat_ids, r,
                                    j.building.methodology.model_dump(),
                                    marks.get(j.building.id))
                    for j, r in zip(jobs, results, strict=True)
                ],
                moved,
            )  # fmt: skip
        announcements = []
        for building_id, (new, recomputed) in changed.items():
            if new:
                announcements.append(Announcement(building_id, new[0], new[-1], False))
            if recomputed:
                announcements.append(Announcement(building_id, recomputed[0], recomputed[-1], True))
        await outbox.enqueue_many(
            conn,
            OUTBOX,
            [(subjects.allocation_computed(a.building_id), a.message()) for a in announcements],
        )
    for job, result in zip(jobs, results, strict=True):
        _count_flags(result.allocation.flags)
        if compute_s is not None:
            compute_s[job.building.id] = result.cpu_s
    return announcements


async def warm_up(conn: asyncpg.Connection, lookaround: int) -> int:
    """Compute, without storing, the last complete hour of one building of each layout, so
    the first events after a start do not pay for loading the kernels and water tables or
    preparing the queries; return how many buildings were computed."""
    layouts = await world.building_layouts(conn)
    marks = await storage.watermarks(conn, list(layouts))
    first_of_layout: dict[str, int] = {}
    for building_id in sorted(marks):
        first_of_layout.setdefault(layouts[building_id], building_id)
    rows = [{"id": b, "complete_until": marks[b]} for b in first_of_layout.values()]
    buildings = await load_buildings(conn, [r["id"] for r in rows])
    jobs = [
        Job(buildings[r["id"]], r["complete_until"] - HOUR, 1)
        for r in rows
        if r["id"] in buildings and buildings[r["id"]].flat_ids.size
    ]
    property_tables()
    await recent.load(conn, [j.building for j in jobs], {j.building.id: j.start for j in jobs}, 1)
    await compute_buildings(conn, jobs, lookaround)
    return len(jobs)
