"""Readings: raw cumulative registers and hourly consumption, per meter and per flat.

Series (``/consumption``, ``/heat/series``) answer the ``Series`` shape; the hour-by-hour
lists (``/registers``, ``/heat``) are paged like every list, keyed on ``t``. All take
``from``/``to`` (dates are the site's local midnight) and ``format=json|csv``."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import APIRouter, Depends
from fastapi.responses import Response

from balans_api.deps import Pool, Reader
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.fastjson import dict_response, json_response
from balans_api.models import HeatHour, RegisterPoint, Series
from balans_api.paging import Cursor, Page, TimeLimit, after_time, time_page
from balans_api.series import series, series_csv, site_timezone
from balans_api.timerange import Format, Resolution, Span, csv_response, span
from balans_api.visibility import check_flat, held_window, visible_meter
from balans_db.queries import allocation, ingest

router = APIRouter(tags=["readings"], responses=ERROR_RESPONSES)
Bounds = Annotated[Span, Depends(span)]


@router.get("/meters/{meter_id}/registers", response_model=Page[RegisterPoint])
async def registers(
    meter_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    cursor: Cursor = None,
    limit: TimeLimit = 1000,
    format: Format = "json",
) -> Response:
    """Raw cumulative registers of a meter, oldest first (CSV: the same page, the next
    cursor in the ``X-Next-Cursor`` header)."""
    meter = await visible_meter(pool, who, meter_id)
    tz = await site_timezone(pool, meter["building_id"])
    window = held_window(who, bounds.resolve(tz), tz)
    rows = []
    if meter["module_serial"] is not None:
        start = after_time(cursor, window.start)
        rows = await ingest.meter_registers(pool, meter_id, start, window.end, limit + 1)
    page, nxt = time_page(rows, limit, "ts")
    items = [RegisterPoint(t=r["ts"], count=r["count"], value=r["value"]) for r in page]
    if format == "csv":
        return csv_response(
            ("t", "count", f"value_{meter['unit']}"),
            ((p.t, p.count, p.value) for p in items),
            f"meter-{meter_id}-registers",
            nxt,
        )
    return json_response(Page[RegisterPoint](items=items, next_cursor=nxt))


@router.get("/meters/{meter_id}/consumption", response_model=Series)
async def consumption(
    meter_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    resolution: Resolution = "hour",
    format: Format = "json",
) -> Response:
    """Consumption of a meter per hour, day or month (days and months in local time),
    rounded to the meter's resolution."""
    meter = await visible_meter(pool, who, meter_id)
    tz = await site_timezone(pool, meter["building_id"])
    window = held_window(who, bounds.resolve(tz), tz)
    points = await allocation.meter_series(pool, meter_id, window.start, window.end, resolution, tz)
    if format == "csv":
        return series_csv(points, meter["unit"], f"meter-{meter_id}-{resolution}", resolution, tz)
    return dict_response(series(points, meter["unit"], resolution, tz, meter_id=meter_id))


@router.get("/flats/{flat_id}/heat", response_model=Page[HeatHour])
async def flat_heat(
    flat_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    cursor: Cursor = None,
    limit: TimeLimit = 1000,
    format: Format = "json",
) -> Response:
    """Hourly heat allocated to a flat, oldest first: measured, its share of common heat,
    total (kWh). CSV: the same page, the next cursor in the ``X-Next-Cursor`` header."""
    check_flat(who, flat_id)
    building_id = await _flat_building(pool, flat_id)
    tz = await site_timezone(pool, building_id)
    window = held_window(who, bounds.resolve(tz), tz)
    start = after_time(cursor, window.start)
    rows = await allocation.flat_heat_hours(pool, flat_id, start, window.end, limit + 1)
    page, nxt = time_page(rows, limit, "t")
    items = [HeatHour(**r) for r in page]
    if format == "csv":
        fields = list(HeatHour.model_fields)
        return csv_response(
            fields, ([getattr(p, f) for f in fields] for p in items), f"flat-{flat_id}-heat", nxt
        )
    return json_response(Page[HeatHour](items=items, next_cursor=nxt))


@router.get("/flats/{flat_id}/heat/series", response_model=Series)
async def flat_heat_buckets(
    flat_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    resolution: Resolution = "day",
    format: Format = "json",
) -> Response:
    """A flat's allocated heat (total kWh, to the Wh) per hour, day or month."""
    check_flat(who, flat_id)
    tz = await site_timezone(pool, await _flat_building(pool, flat_id))
    window = held_window(who, bounds.resolve(tz), tz)
    points = await allocation.flat_heat_series(
        pool, flat_id, window.start, window.end, resolution, tz
    )
    if format == "csv":
        return series_csv(points, "kWh", f"flat-{flat_id}-heat-{resolution}", resolution, tz)
    return dict_response(series(points, "kWh", resolution, tz, flat_id=flat_id))


async def _flat_building(pool: asyncpg.Pool, flat_id: int) -> int:
    building_id: int | None = await pool.fetchval(
        "select building_id from flats where id = $1", flat_id
    )
    if building_id is None:
        raise not_found("flat")
    return building_id
