"""The ``Series`` response shape around allocation's points (balans_db.queries.allocation),
as JSON or CSV."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi.responses import Response

from balans_api.timerange import csv_response
from balans_db.queries import world
from balans_db.queries.allocation import Points


async def site_timezone(pool: asyncpg.Pool, building_id: int) -> str:
    """The building's local time zone (UTC if unknown): days and months are cut in it."""
    return await world.site_timezone(pool, building_id) or "UTC"


def series(points: Points, unit: str, resolution: str, **ids: int) -> dict[str, Any]:
    """The ``Series`` shape as a plain dict (encoded by :func:`fastjson.dict_response`)."""
    return {**ids, "unit": unit, "resolution": resolution, "points": points}


def series_csv(points: Points, unit: str, name: str) -> Response:
    """A series as CSV: ``t,value_<unit>,estimated,partial`` (the JSON points' values)."""
    return csv_response(
        ("t", f"value_{unit}", "estimated", "partial"),
        ((p["t"], p["value"], p["estimated"], p["partial"]) for p in points.parsed()),
        name,
    )
