"""SQL for time series: meter consumption and per-flat heat, bucketed in local time.

Hours are stored in UTC; days and months are cut in the site's time zone (the
building's local calendar is what people read). Hourly series skip the bucketing
altogether (read in index order, no time-zone arithmetic per row: three times faster),
and PostgreSQL builds the points' JSON: validating and re-encoding hundreds of points
per series in Python was most of a profile request's time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import asyncpg

from balans_api.timerange import Resolution, TimeRange


@dataclass(frozen=True)
class Points:
    """A series' points as the JSON array PostgreSQL built (passed through verbatim by
    :func:`fastjson.dict_response`) and their total."""

    json: str
    total: float

    def parsed(self) -> list[dict[str, Any]]:
        return json.loads(self.json)


_AS_JSON = """coalesce(json_agg(json_build_object('t', t, 'value', value,
                      'estimated', estimated) order by t), '[]')::text"""


def _bucket(resolution: Resolution, column: str, tz: str, args: list[object]) -> tuple[str, str]:
    """(time expression, GROUP BY clause) for the resolution; appends its parameters."""
    if resolution == "hour":
        return column, ""
    args += [resolution, tz]
    return f"date_trunc(${len(args) - 1}, {column}, ${len(args)})", "group by 1"


def _source(
    table: str, value: str, key: str, resolution: Resolution, tz: str, args: list[object]
) -> str:
    """Points of ``table`` where the condition ``key`` holds; args = [key, start, end]."""
    t, group = _bucket(resolution, "hour", tz, args)
    agg = (f"sum({value})", "bool_or(estimated)") if group else (value, "estimated")
    return f"""select {t} as t, {agg[0]} as value, {agg[1]} as estimated from {table}
               where {key} and hour >= $2 and hour < $3 {group}"""


_WITH_TOTAL = f"{_AS_JSON} as json, coalesce(sum(value), 0)::float8 as total"


async def _points(pool: asyncpg.Pool, sql: str, args: list[object]) -> Points:
    row = await pool.fetchrow(f"select {_WITH_TOTAL} from ({sql}) s", *args)
    return Points(row["json"], row["total"])


async def site_timezone(pool: asyncpg.Pool, building_id: int) -> str:
    tz = await pool.fetchval(
        "select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1",
        building_id,
    )
    return str(tz or "UTC")


async def meter_series(
    pool: asyncpg.Pool, meter_id: int, span: TimeRange, resolution: Resolution, tz: str
) -> Points:
    args: list[object] = [meter_id, span.start, span.end]
    sql = _source("meter_consumption", "value", "meter_id = $1", resolution, tz, args)
    return await _points(pool, sql, args)


async def flat_heat_series(
    pool: asyncpg.Pool, flat_id: int, span: TimeRange, resolution: Resolution, tz: str
) -> Points:
    args: list[object] = [flat_id, span.start, span.end]
    sql = _source("heat_allocation", "total_kwh", "flat_id = $1", resolution, tz, args)
    return await _points(pool, sql, args)


async def building_average(
    pool: asyncpg.Pool,
    building_id: int,
    utility: str,
    span: TimeRange,
    resolution: Resolution,
    tz: str,
) -> Points:
    """The average flat's consumption per bucket. Heat: allocation's building hours
    (Σ flat totals = the building meter, docs/allocation.md) over the number of flats, one
    row per hour; without them, the mean of each flat's bucket total from the flat rows."""
    if utility == "heat":
        args: list[object] = [building_id, span.start, span.end]
        t, group = _bucket(resolution, "hour", tz, args)
        value = "sum(building_kwh)" if group else "building_kwh"
        points = await _points(
            pool,
            f"""select {t} as t, {value} / greatest(
                       (select count(*) from flats where building_id = $1), 1) as value,
                       false as estimated
                from allocation_building_hours
                where building_id = $1 and hour >= $2 and hour < $3 {group}""",
            args,
        )
        if points.json != "[]":
            return points
    args = [building_id, span.start, span.end]
    t, _ = _bucket(resolution, "hour", tz, args)
    if utility == "heat":
        inner = f"""select flat_id as k, {t} as t, sum(total_kwh) as value
                    from heat_allocation
                    where building_id = $1 and hour >= $2 and hour < $3 group by 1, 2"""
    else:
        args.append(utility)
        inner = f"""select mc.meter_id as k, {t.replace("hour", "mc.hour")} as t,
                           sum(mc.value) as value
                    from meter_consumption mc join meters m on m.id = mc.meter_id
                    where m.building_id = $1 and m.role = 'flat' and m.utility = ${len(args)}
                      and mc.hour >= $2 and mc.hour < $3 group by 1, 2"""
    sql = f"select t, avg(value) as value, false as estimated from ({inner}) x group by t"
    return await _points(pool, sql, args)


async def flat_meter_series(
    pool: asyncpg.Pool,
    flat_id: int,
    span: TimeRange,
    resolution: Resolution,
    tz: str,
    month: date,
) -> list[dict[str, Any]]:
    """Every meter of a flat with its series and balance's month-end forecast for
    ``month`` (None where balance has none), in one query."""
    args: list[object] = [flat_id, span.start, span.end]
    points = _source("meter_consumption", "value", "meter_id = m.id", resolution, tz, args)
    args.append(month)
    rows = await pool.fetch(
        f"""select m.id as meter_id, m.serial, m.utility, m.unit, p.json, p.total,
                   (select forecast_total from forecasts
                    where scope = 'meter' and scope_id = m.id and month = ${len(args)})
                   as forecast
            from meters m, lateral (select {_WITH_TOTAL} from ({points}) s) p
            where m.flat_id = $1 order by m.id""",
        *args,
    )
    return [
        {
            "meter_id": r["meter_id"],
            "serial": r["serial"],
            "utility": r["utility"],
            "unit": r["unit"],
            "points": Points(r["json"], r["total"]),
            "forecast": r["forecast"],
        }
        for r in rows
    ]


def series(points: Points, unit: str, resolution: str, **ids: int) -> dict[str, Any]:
    """The ``Series`` shape as a plain dict (encoded by :func:`fastjson.dict_response`)."""
    return {**ids, "unit": unit, "resolution": resolution, "points": points}
