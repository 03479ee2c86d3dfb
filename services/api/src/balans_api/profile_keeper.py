"""Build the kept answers of closed months (:mod:`balans_api.kept_profiles`): a building
month at a time, every flat of it at both resolutions, with the code that answers a
profile live (``views.profile_body``), so a kept answer is the bytes the live path gives.

Which months: the last ``keep_months`` closed months of each building (closed in its
site's calendar), once balance has moved past them. balance forecasts the month of the
newest hour it analysed, and a meter's forecast and the building's degree-days are part
of the profile: a month whose forecasts balance may still write (it announces none) is
not kept yet, and a building balance has never analysed is always computed."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import asyncpg
import structlog

from balans_api import kept_profiles
from balans_api.calendar import add_months, month_range, this_month
from balans_api.metrics import KEPT_PROFILE_FAILURES, KEPT_PROFILES
from balans_api.principal import FlatContext
from balans_api.routes.views import FLAT_CONTEXT, building_figures, profile_body
from balans_db.queries import allocation, balance

log = structlog.get_logger("profile_keeper")

BuildingMonth = tuple[int, date]


@dataclass
class Built:
    """What a run of builds did."""

    months: int = 0  # building months stored
    discarded: int = 0  # building months an invalidation overtook (built again later)
    failed: int = 0
    rows: int = 0  # answers stored
    bytes: int = 0  # their bodies' size


async def build_month(pool: asyncpg.Pool, building_id: int, month: date) -> tuple[int, int] | None:
    """Build and keep the building month's answers: (answers, bytes), or None when an
    invalidation came while it read (nothing is stored; the month stays live)."""
    generation = await kept_profiles.begin(pool, building_id, month)
    flats = [
        FlatContext(**r)
        for r in await pool.fetch(
            f"{FLAT_CONTEXT} where f.building_id = $1 order by f.id", building_id
        )
    ]
    rows: list[kept_profiles.KeptRow] = []
    span = month_range(month, flats[0].timezone) if flats else None
    # a month without heat is kept as nothing: its profiles are computed (cheaply), until
    # data for it arrives and its announcement has the month built again
    flat_ids = [f.flat_id for f in flats]
    if span and await allocation.any_heat(pool, flat_ids, span.start, span.end):
        for resolution in kept_profiles.RESOLUTIONS:
            figures = await building_figures(pool, flats[0], span, resolution)
            for flat in flats:
                body = await profile_body(pool, flat, span, month, resolution, figures)
                rows.append((flat.flat_id, month, resolution, building_id, body))
    if not await kept_profiles.store(pool, building_id, month, generation, rows):
        KEPT_PROFILES.labels("discarded").inc()
        return None
    KEPT_PROFILES.labels("built").inc(len(rows))
    return len(rows), sum(len(r[4]) for r in rows)


async def keepable(pool: asyncpg.Pool, pairs: Iterable[BuildingMonth]) -> list[BuildingMonth]:
    """The pairs whose month is closed in the building's calendar and that balance has
    moved past."""
    pairs = sorted(set(pairs))
    buildings = sorted({b for b, _ in pairs})
    zones = dict(
        await pool.fetch(
            """select b.id, s.timezone from buildings b join sites s on s.id = b.site_id
               where b.id = any($1::int[])""",
            buildings,
        )
    )
    newest = await balance.newest_forecast_months(pool, buildings)
    return [
        (b, m)
        for b, m in pairs
        if b in zones
        and kept_profiles.closed(month_range(m, zones[b]))
        and b in newest
        and newest[b] > m
    ]


async def missing(pool: asyncpg.Pool, keep_months: int) -> list[BuildingMonth]:
    """The building months of the last ``keep_months`` closed months not kept now."""
    zones = await pool.fetch(
        "select b.id, s.timezone from buildings b join sites s on s.id = b.site_id"
    )
    wanted = {
        (r["id"], add_months(this_month(r["timezone"]), -k))
        for r in zones
        for k in range(1, keep_months + 1)
    }
    built = await kept_profiles.built_months(pool, sorted({m for _, m in wanted}))
    return await keepable(pool, wanted - built)


async def build(pool: asyncpg.Pool, pairs: Sequence[BuildingMonth], jobs: int = 1) -> Built:
    """Build ``pairs``, ``jobs`` building months at a time; a failure is logged, counted
    and leaves that month live."""
    done = Built()
    todo = list(pairs)

    async def worker() -> None:
        while todo:
            building_id, month = todo.pop(0)
            try:
                result = await build_month(pool, building_id, month)
            except Exception:
                KEPT_PROFILE_FAILURES.inc()
                done.failed += 1
                log.exception("kept profiles not built", building_id=building_id, month=month)
                continue
            if result is None:
                done.discarded += 1
            else:
                done.months += 1
                done.rows += result[0]
                done.bytes += result[1]

    await asyncio.gather(*(worker() for _ in range(max(1, jobs))))
    return done
