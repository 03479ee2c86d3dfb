"""The one shape of every series the API answers, columnar (as Prometheus' range answers
and Grafana's data frames): the buckets' times are ``start`` + i x ``step`` (an hour, or a
day or month of the site's calendar in ``time_zone``), each quantity is one array with a
value (or null) per bucket, and the flagged buckets are listed by index. A month of hours
as objects ``{t, value, estimated, partial}`` was 75 bytes a point, built per row by
PostgreSQL; as a column of values it is about 6. CSV stays one row per bucket."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from fastapi.responses import Response

from balans_api.calendar import add_months
from balans_api.fastjson import RawJson
from balans_api.timerange import csv_response
from balans_db.queries import world
from balans_db.queries.allocation import Points, Resolution, bucket_index

STEPS: dict[str, str] = {"hour": "PT1H", "day": "P1D", "month": "P1M"}
"""The ISO 8601 duration of a bucket; days and months are counted in the site's calendar."""


async def site_timezone(pool: asyncpg.Pool, building_id: int) -> str:
    """The building's local time zone (UTC if unknown): days and months are cut in it."""
    return await world.site_timezone(pool, building_id) or "UTC"


def bucket_start(start: datetime, index: int, resolution: str, tz: str) -> datetime:
    """When bucket ``index`` of a series beginning at ``start`` begins (UTC)."""
    if resolution == "hour":
        return start + timedelta(hours=index)
    zone = ZoneInfo(tz)
    first = start.astimezone(zone).date()
    day = first + timedelta(days=index) if resolution == "day" else add_months(first, index)
    return datetime.combine(day, time(), zone).astimezone(UTC)


def axis(start: datetime | None, resolution: str, tz: str) -> dict[str, Any]:
    """The time fields every series carries."""
    return {"resolution": resolution, "time_zone": tz, "start": start, "step": STEPS[resolution]}


def series(points: Points, unit: str, resolution: str, tz: str, **ids: int) -> dict[str, Any]:
    """The ``Series`` shape as a plain dict (encoded by :func:`fastjson.dict_response`, which
    splices the values in as PostgreSQL wrote them)."""
    return {
        **ids,
        "unit": unit,
        **axis(points.start, resolution, tz),
        "values": RawJson(points.values),
        "estimated": points.estimated,
        "partial": points.partial,
    }


def columns(
    times: Sequence[datetime],
    rows: Iterable[Mapping[str, Any]],
    resolution: Resolution,
    tz: str,
    values: Sequence[str],
    flags: Sequence[str] = (),
) -> dict[str, Any]:
    """A series in the one shape from points given one by one (``times`` and their ``rows``):
    the axis, one array per name of ``values`` (null where a bucket has no point) and, per
    name of ``flags``, the indices of the points where it is true."""
    start = times[0] if times else None
    out: dict[str, Any] = {**axis(start, resolution, tz)}
    out |= {name: [] for name in (*values, *flags)}
    for t, row in zip(times, rows, strict=True):
        i = bucket_index(start, t, resolution, tz) if start is not None else 0
        for name in values:
            column = out[name]
            column.extend([None] * (i + 1 - len(column)))
            column[i] = row[name]
        for name in flags:
            if row[name]:
                out[name].append(i)
    return out


def buckets(
    body: Mapping[str, Any],
    values: Sequence[str] = ("values",),
    flags: Sequence[str] = ("estimated", "partial"),
) -> list[dict[str, Any]]:
    """A series of the one shape (an answer as sent or as parsed JSON) bucket by bucket, as a
    client reads it: ``{"t": <UTC datetime>, <each of values>, <each of flags>: bool}`` of
    each bucket with a value (``values`` is named ``value``)."""
    start = body["start"]
    if isinstance(start, str):
        start = datetime.fromisoformat(start)
    flagged = {name: set(body.get(name) or ()) for name in flags}
    count = max((len(body[name]) for name in values), default=0)
    out = []
    for i in range(count):
        cells = {("value" if n == "values" else n): body[n][i] for n in values}
        if all(cell is None for cell in cells.values()):
            continue
        t = bucket_start(start, i, body["resolution"], body["time_zone"])
        out.append({"t": t, **cells, **{name: i in flagged[name] for name in flags}})
    return out


def series_csv(points: Points, unit: str, name: str, resolution: str, tz: str) -> Response:
    """A series as CSV: ``t,value_<unit>,estimated,partial``, one row per bucket with a
    value."""
    body = series(points, unit, resolution, tz) | {"values": points.parsed()}
    return csv_response(
        ("t", f"value_{unit}", "estimated", "partial"),
        ((p["t"], p["value"], p["estimated"], p["partial"]) for p in buckets(body)),
        name,
    )
