"""The ``Series`` response shape around allocation's points (balans_db.queries.allocation)."""

from __future__ import annotations

from typing import Any

import asyncpg

from balans_db.queries import world
from balans_db.queries.allocation import Points


async def site_timezone(pool: asyncpg.Pool, building_id: int) -> str:
    """The building's local time zone (UTC if unknown): days and months are cut in it."""
    return await world.site_timezone(pool, building_id) or "UTC"


def series(points: Points, unit: str, resolution: str, **ids: int) -> dict[str, Any]:
    """The ``Series`` shape as a plain dict (encoded by :func:`fastjson.dict_response`)."""
    return {**ids, "unit": unit, "resolution": resolution, "points": points}
