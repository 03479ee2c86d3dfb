"""Readings: raw cumulative registers and hourly consumption, per meter and per flat."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from balans_api.deps import Pool, Reader
from balans_api.errors import ERROR_RESPONSES
from balans_api.fastjson import dict_response
from balans_api.models import HeatPoint, RegisterPoint, Series
from balans_api.series import series, site_timezone
from balans_api.timerange import Format, Resolution, TimeRange, csv_response, time_range
from balans_api.visibility import check_flat, visible_meter
from balans_db.queries import allocation, ingest

router = APIRouter(tags=["readings"], responses=ERROR_RESPONSES)
Span = Annotated[TimeRange, Depends(time_range)]


@router.get("/meters/{meter_id}/registers", response_model=list[RegisterPoint])
async def registers(
    meter_id: int, pool: Pool, who: Reader, span: Span, format: Format = "json"
) -> list[RegisterPoint] | Response:
    """Raw cumulative registers of a meter (at most 20 000 points per request)."""
    meter = await visible_meter(pool, who, meter_id)
    rows = []
    if meter["module_serial"] is not None:
        rows = await ingest.registers(
            pool, meter["module_serial"], meter["input"], span.start, span.end
        )
    weight = float(meter["pulse_weight"])
    points = [RegisterPoint(ts=r["ts"], count=r["count"], value=r["count"] * weight) for r in rows]
    if format == "csv":
        return csv_response(
            ("ts", "count", f"value_{meter['unit']}"),
            ((p.ts, p.count, p.value) for p in points),
            f"meter-{meter_id}-registers",
        )
    return points


@router.get("/meters/{meter_id}/consumption", response_model=Series)
async def consumption(
    meter_id: int,
    pool: Pool,
    who: Reader,
    span: Span,
    resolution: Resolution = "hour",
    format: Format = "json",
) -> Response:
    """Consumption of a meter per hour, day or month (days and months in local time)."""
    meter = await visible_meter(pool, who, meter_id)
    tz = await site_timezone(pool, meter["building_id"])
    points = await allocation.meter_series(pool, meter_id, span.start, span.end, resolution, tz)
    if format == "csv":
        return csv_response(
            ("t", f"value_{meter['unit']}", "estimated"),
            ((p["t"], p["value"], p["estimated"]) for p in points.parsed()),
            f"meter-{meter_id}-{resolution}",
        )
    return dict_response(series(points, meter["unit"], resolution, meter_id=meter_id))


@router.get("/flats/{flat_id}/heat", response_model=list[HeatPoint])
async def flat_heat(
    flat_id: int, pool: Pool, who: Reader, span: Span, format: Format = "json"
) -> list[HeatPoint] | Response:
    """Hourly heat allocated to a flat: measured, its share of common heat, total (kWh)."""
    check_flat(who, flat_id)
    rows = await allocation.flat_heat_hours(pool, flat_id, span.start, span.end)
    points = [HeatPoint(**r) for r in rows]
    if format == "csv":
        return csv_response(
            ("hour", "measured_kwh", "common_kwh", "total_kwh", "estimated", "flags"),
            (
                (p.hour, p.measured_kwh, p.common_kwh, p.total_kwh, p.estimated, p.flags)
                for p in points
            ),
            f"flat-{flat_id}-heat",
        )
    return points


@router.get("/flats/{flat_id}/heat/series", response_model=Series)
async def flat_heat_buckets(
    flat_id: int, pool: Pool, who: Reader, span: Span, resolution: Resolution = "day"
) -> Response:
    """A flat's allocated heat (total kWh) per hour, day or month."""
    check_flat(who, flat_id)
    building_id = await pool.fetchval("select building_id from flats where id = $1", flat_id)
    tz = await site_timezone(pool, building_id) if building_id else "UTC"
    points = await allocation.flat_heat_series(pool, flat_id, span.start, span.end, resolution, tz)
    return dict_response(series(points, "kWh", resolution, flat_id=flat_id))
