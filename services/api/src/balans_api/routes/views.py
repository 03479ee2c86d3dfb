"""What the portal's pages show, as JSON: a consumer's month profile, year comparison,
reading on a date and monthly statement; an operator's building overview.

Building-wide figures (the average flat) are cached for ``cache_ttl_s``: they are the
same for every flat of the building and change at most hourly."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from balans_api.calendar import add_months, day_range, month_range, parse_month, this_month
from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.fastjson import dict_response, raw_json
from balans_api.models import ConsumptionPoint, Series
from balans_api.principal import Principal
from balans_api.series import series
from balans_api.timerange import TimeRange
from balans_api.visibility import check_building, check_flat
from balans_db.queries import allocation, balance, ingest, world
from balans_db.queries.allocation import Points

router = APIRouter(tags=["portal views"], responses=ERROR_RESPONSES)

Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (local).")]


class FlatContext(BaseModel):
    flat_id: int
    building_id: int
    number: str
    rooms: int
    area_m2: float
    timezone: str


class MeterSeries(Series):
    serial: str
    utility: str
    forecast: float | None = Field(
        None, description="balance's degree-day month-end forecast for this meter, if any."
    )


class Coefficients(BaseModel):
    consumption: float | None = Field(description="My heat / the average flat's heat.")
    temperature: float | None = Field(description="My mean ΔT / the building's mean flat ΔT.")
    efficiency: float | None = Field(description="My kWh per m² / the building's kWh per m².")


class Profile(BaseModel):
    flat: FlatContext
    month: str
    resolution: Literal["hour", "day"]
    heat: Series
    building_average: Series
    meters: list[MeterSeries]
    month_to_date_kwh: float
    forecast_kwh: float | None = Field(description="Month-to-date scaled to the whole month.")
    coefficients: Coefficients


class History(BaseModel):
    flat: FlatContext
    resolution: Literal["month", "day"]
    current: Series
    last_year: Series


class MeterReading(BaseModel):
    meter_id: int
    serial: str
    utility: str
    unit: str
    ts: datetime | None
    value: float | None


class DayReadings(BaseModel):
    flat_id: int
    date: date
    readings: list[MeterReading]


class Statement(BaseModel):
    """The monthly information EU Directive 2018/2002 (EED art. 10a, annex VIIa) requires
    for remotely read heat: this month against last month, the same month last year and
    an average comparable user (same building, same number of rooms)."""

    flat_id: int
    month: str
    kwh: float
    previous_month_kwh: float
    same_month_last_year_kwh: float
    comparable_user_kwh: float | None
    change_vs_previous_pct: float | None
    change_vs_last_year_pct: float | None


class Overview(BaseModel):
    building_id: int
    name: str
    layout: str
    flats: int
    meters: int
    modules: int
    modules_silent_24h: int
    modules_low_battery: int
    open_alerts: int | None
    building_heat_last_30d: list[ConsumptionPoint]
    flats_measured_last_30d: list[ConsumptionPoint]


async def flat_context(pool: asyncpg.Pool, who: Principal, flat_id: int) -> FlatContext:
    check_flat(who, flat_id)
    row = await pool.fetchrow(
        """select f.id as flat_id, f.building_id, f.number, f.rooms, f.area_m2::float8 as area_m2,
                  s.timezone
           from flats f join buildings b on b.id = f.building_id join sites s on s.id = b.site_id
           where f.id = $1""",
        flat_id,
    )
    if row is None:
        raise not_found("flat")
    return FlatContext(**row)


def _pct(now: float, before: float) -> float | None:
    return 100.0 * (now - before) / before if before else None


def _ratio(mine: float | None, average: float | None) -> float | None:
    return mine / average if mine is not None and average else None


async def _delta_t(
    pool: asyncpg.Pool, span: TimeRange, building_id: int, flat_id: int | None
) -> float | None:
    return await ingest.mean_flat_delta_t(pool, building_id, flat_id, span.start, span.end)


async def _building_figures(
    pool: asyncpg.Pool, flat: FlatContext, span: TimeRange, resolution: str
) -> tuple[Points, float | None, float]:
    average = await allocation.building_average(
        pool, flat.building_id, "heat", span.start, span.end, resolution, flat.timezone
    )
    delta_t = await _delta_t(pool, span, flat.building_id, None)
    area = await pool.fetchval(
        "select coalesce(avg(area_m2), 0)::float8 from flats where building_id = $1",
        flat.building_id,
    )
    return average, delta_t, float(area)


@router.get("/flats/{flat_id}/profile", response_model=Profile)
async def profile(
    flat_id: int,
    request: Request,
    pool: Pool,
    who: Reader,
    month: Month = None,
    resolution: Literal["hour", "day"] = "day",
) -> Response:
    """A month of the flat: heat per hour or day with the average flat's line, each meter
    as its own series, month-to-date, the forecast to the month's end, the coefficients."""
    flat = await flat_context(pool, who, flat_id)
    first = parse_month(month) if month else this_month(flat.timezone)
    span = month_range(first, flat.timezone)
    heat = await allocation.flat_heat_series(
        pool, flat_id, span.start, span.end, resolution, flat.timezone
    )
    average, building_dt, mean_area = await request.app.state.cache.get(
        ("building", flat.building_id, span.start, resolution),
        lambda: _building_figures(pool, flat, span, resolution),
    )
    meters = await allocation.flat_meter_series(
        pool, flat_id, span.start, span.end, resolution, flat.timezone, first
    )
    mine = heat.total
    avg_total = average.total
    now = datetime.now(UTC)
    elapsed = (min(now, span.end) - span.start).total_seconds()
    forecast = mine * (span.end - span.start).total_seconds() / elapsed if elapsed > 0 else None
    my_dt = await _delta_t(pool, span, flat.building_id, flat_id)
    coefficients = Coefficients(
        consumption=_ratio(mine, avg_total),
        temperature=_ratio(my_dt, building_dt),
        efficiency=_ratio(mine / flat.area_m2, avg_total / mean_area if mean_area else None),
    )
    return dict_response(
        {
            "flat": flat.model_dump(),
            "month": first.strftime("%Y-%m"),
            "resolution": resolution,
            "heat": series(heat, "kWh", resolution, flat_id=flat_id),
            "building_average": series(average, "kWh", resolution),
            "meters": [{**m, "resolution": resolution} for m in meters],
            "month_to_date_kwh": mine,
            "forecast_kwh": forecast,
            "coefficients": coefficients.model_dump(),
        }
    )


@router.get("/flats/{flat_id}/history", response_model=History)
async def history(
    flat_id: int,
    pool: Pool,
    who: Reader,
    year: Annotated[int | None, Query(ge=1971, le=8999)] = None,
    month: Month = None,
) -> Response:
    """Year by month (or, with ``month``, the month by day) against the year before."""
    flat = await flat_context(pool, who, flat_id)
    resolution: Literal["month", "day"]
    if month:
        first, resolution, months = parse_month(month), "day", 1
    else:
        first, resolution, months = date(year or this_month(flat.timezone).year, 1, 1), "month", 12
    span = TimeRange(
        month_range(first, flat.timezone).start,
        month_range(add_months(first, months - 1), flat.timezone).end,
    )
    before = TimeRange(
        month_range(add_months(first, -12), flat.timezone).start,
        month_range(add_months(first, months - 13), flat.timezone).end,
    )
    current = await allocation.flat_heat_series(
        pool, flat_id, span.start, span.end, resolution, flat.timezone
    )
    last = await allocation.flat_heat_series(
        pool, flat_id, before.start, before.end, resolution, flat.timezone
    )
    return dict_response(
        {
            "flat": flat.model_dump(),
            "resolution": resolution,
            "current": series(current, "kWh", resolution, flat_id=flat_id),
            "last_year": series(last, "kWh", resolution, flat_id=flat_id),
        }
    )


@router.get("/flats/{flat_id}/readings", response_model=DayReadings)
async def readings_on(
    flat_id: int, pool: Pool, who: Reader, day: Annotated[date, Query(alias="date")]
) -> DayReadings:
    """Each meter's register at the end of a local day (the calendar on the portal)."""
    flat = await flat_context(pool, who, flat_id)
    end = day_range(day, flat.timezone).end
    rows = await ingest.flat_registers_at(pool, flat_id, end)
    return DayReadings(
        flat_id=flat_id,
        date=day,
        readings=[
            MeterReading(
                meter_id=r["id"],
                serial=r["serial"],
                utility=r["utility"],
                unit=r["unit"],
                ts=r["ts"],
                value=r["count"] * r["weight"] if r["count"] is not None else None,
            )
            for r in rows
        ],
    )


async def _heat_total(pool: asyncpg.Pool, flat_id: int, span: TimeRange) -> float:
    return await allocation.flat_heat_total(pool, flat_id, span.start, span.end)


@router.get("/flats/{flat_id}/statement", response_model=Statement)
async def statement(flat_id: int, pool: Pool, who: Reader, month: Month = None) -> Statement:
    """The monthly consumption statement for remotely read heat (EU EED annex VIIa)."""
    flat = await flat_context(pool, who, flat_id)
    first = parse_month(month) if month else this_month(flat.timezone)
    kwh = await _heat_total(pool, flat_id, month_range(first, flat.timezone))
    prev = await _heat_total(pool, flat_id, month_range(add_months(first, -1), flat.timezone))
    last_year = await _heat_total(pool, flat_id, month_range(add_months(first, -12), flat.timezone))
    span = month_range(first, flat.timezone)
    comparable = await allocation.comparable_flats_heat(
        pool, flat.building_id, flat.rooms, span.start, span.end
    )
    return Statement(
        flat_id=flat_id,
        month=first.strftime("%Y-%m"),
        kwh=kwh,
        previous_month_kwh=prev,
        same_month_last_year_kwh=last_year,
        comparable_user_kwh=comparable,
        change_vs_previous_pct=_pct(kwh, prev),
        change_vs_last_year_pct=_pct(kwh, last_year),
    )


async def _open_alerts(pool: asyncpg.Pool, building_id: int) -> int | None:
    try:
        return await balance.open_alert_count(pool, building_id)
    except asyncpg.UndefinedTableError:
        return None  # balance's migration has not landed in this database


async def _overview(pool: asyncpg.Pool, building_id: int) -> Overview:
    row = await ingest.building_equipment(pool, building_id)
    if row is None:
        raise not_found("building")
    tz = await world.site_timezone(pool, building_id) or "UTC"
    since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    building_days = await allocation.building_meter_heat_days(pool, building_id, since, tz)
    flat_days = await allocation.flats_measured_heat_days(pool, building_id, since, tz)
    return Overview(
        building_id=row["id"],
        name=row["name"],
        layout=row["layout"],
        flats=row["flats"],
        meters=row["meters"],
        modules=row["modules"],
        modules_silent_24h=row["modules_silent_24h"],
        modules_low_battery=row["modules_low_battery"],
        open_alerts=await _open_alerts(pool, building_id),
        building_heat_last_30d=[ConsumptionPoint(**r) for r in building_days],
        flats_measured_last_30d=[ConsumptionPoint(**r) for r in flat_days],
    )


@router.get("/buildings/{building_id}/overview", response_model=Overview)
async def overview(building_id: int, request: Request, pool: Pool, who: Staff) -> Response:
    """An operator's summary of a building: equipment, silent and low-battery modules,
    open alerts, daily heat of the building meter against the sum of the flats."""
    check_building(who, building_id)

    async def compute() -> bytes:
        return (await _overview(pool, building_id)).model_dump_json().encode()

    return raw_json(await request.app.state.cache.get(("overview", building_id), compute))
