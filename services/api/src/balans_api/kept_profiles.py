"""Kept answers of closed months: a flat's month profile stored as the bytes the api
answers (``kept_profiles``), one row per flat, month and resolution.

A month is closed once its last local day has passed; the month running is always
computed. ``profile_keeper`` builds a closed month's answers for every flat of a building
at once, so a request pays the same whether anyone asked before or not. Late data that
changes an input of a closed month (announced on NATS, see ``keeper``) deletes that
month's answers of the building and bumps its ``generation`` in ``kept_profile_months``;
a build remembers the generation it began at and stores nothing if it moved, so answers
built from inputs read before the change are never kept. Until the month is built again
its profiles are computed live."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import asyncpg

from balans_api.calendar import month_range
from balans_api.metrics import KEPT_PROFILES
from balans_api.principal import FlatContext, Principal
from balans_api.timerange import TimeRange
from balans_api.visibility import held_window

RESOLUTIONS = ("hour", "day")
ASKED = "balans.kept_profile_asked"
"""Set in a request's ASGI scope once :func:`answer` was asked for it (and found none)."""
KeptRow = tuple[int, date, str, int, bytes]
"""flat_id, month, resolution, building_id, body"""


def closed(month: TimeRange) -> bool:
    """Whether the month (its local span) has ended."""
    return datetime.now(UTC) >= month.end


async def answer(
    pool: asyncpg.Pool, who: Principal, flat: FlatContext, month: date, resolution: str
) -> bytes | None:
    """The kept answer ``who`` gets for the flat's ``month``, or None (compute it): only a
    closed month, and only over the whole month: a consumer whose account holds the flat
    for part of it sees that part, computed."""
    whole = month_range(month, flat.timezone)
    if not closed(whole) or held_window(who, whole, flat.timezone) != whole:
        return None
    return await lookup(pool, flat.flat_id, month, resolution)


async def lookup(pool: asyncpg.Pool, flat_id: int, month: date, resolution: str) -> bytes | None:
    """The kept answer, or None (not built yet, or invalidated)."""
    body = await pool.fetchval(
        "select body from kept_profiles where flat_id = $1 and month = $2 and resolution = $3",
        flat_id,
        month,
        resolution,
    )
    KEPT_PROFILES.labels("hit" if body is not None else "miss").inc()
    return body


async def begin(pool: asyncpg.Pool, building_id: int, month: date) -> int:
    """The building month's generation, read before a build reads any input."""
    return int(
        await pool.fetchval(
            """insert into kept_profile_months (building_id, month) values ($1, $2)
               on conflict (building_id, month) do update set month = excluded.month
               returning generation""",
            building_id,
            month,
        )
    )


async def store(
    pool: asyncpg.Pool, building_id: int, month: date, generation: int, rows: Sequence[KeptRow]
) -> bool:
    """Keep the building month's answers, replacing any, if no invalidation came since
    ``begin`` returned ``generation``; False (nothing stored) if one did."""
    async with pool.acquire() as conn, conn.transaction():
        now = await conn.fetchval(
            """select generation from kept_profile_months
               where building_id = $1 and month = $2 for update""",
            building_id,
            month,
        )
        if now != generation:
            return False
        await conn.execute(
            "delete from kept_profiles where building_id = $1 and month = $2", building_id, month
        )
        await conn.copy_records_to_table(
            "kept_profiles",
            records=rows,
            columns=["flat_id", "month", "resolution", "building_id", "body"],
        )
        await conn.execute(
            """update kept_profile_months set built_at = now()
               where building_id = $1 and month = $2""",
            building_id,
            month,
        )
    return True


async def invalidate(pool: asyncpg.Pool, building_id: int, months: Sequence[date] | None) -> int:
    """Delete the building's kept answers of ``months`` (every month when None) and move
    their generation on, in one transaction; the number of answers deleted."""
    async with pool.acquire() as conn, conn.transaction():
        if months is None:
            await conn.execute(
                """update kept_profile_months set generation = generation + 1, built_at = null
                   where building_id = $1""",
                building_id,
            )
            status = await conn.execute(
                "delete from kept_profiles where building_id = $1", building_id
            )
        else:
            await conn.execute(
                """insert into kept_profile_months (building_id, month, generation)
                   select $1, unnest($2::date[]), 1
                   on conflict (building_id, month) do update
                   set generation = kept_profile_months.generation + 1, built_at = null""",
                building_id,
                list(months),
            )
            status = await conn.execute(
                "delete from kept_profiles where building_id = $1 and month = any($2::date[])",
                building_id,
                list(months),
            )
    deleted = int(status.split()[-1])
    KEPT_PROFILES.labels("invalidated").inc(deleted)
    return deleted


async def built_months(pool: asyncpg.Pool, months: Sequence[date]) -> set[tuple[int, date]]:
    """(building, month) of ``months`` whose answers are kept and valid."""
    rows = await pool.fetch(
        """select building_id, month from kept_profile_months
           where month = any($1::date[]) and built_at is not null""",
        list(months),
    )
    return {(r["building_id"], r["month"]) for r in rows}
