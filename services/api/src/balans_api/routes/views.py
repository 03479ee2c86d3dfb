"""What the portal's pages show, as JSON: a consumer's month profile, year comparison,
reading on a date and monthly statement; an operator's building overview.

Building-wide figures (the average flat) are cached for ``cache_ttl_s``: they are the
same for every flat of the building and change at most hourly."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from balans_api import kept_profiles
from balans_api.calendar import add_months, day_range, month_range, parse_month, this_month
from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.fastjson import dict_bytes, dict_response, raw_json
from balans_api.models import AlertPublic, Series
from balans_api.principal import FlatContext, Principal
from balans_api.routes.exchanges import ExchangeMarker
from balans_api.series import columns, series
from balans_api.timerange import Span, TimeRange
from balans_api.timerange import span as bounds_of
from balans_api.visibility import VALVE_STATE, check_building, check_flat, held_window
from balans_db.queries import allocation, balance, ingest, world
from balans_db.queries.allocation import Points

router = APIRouter(tags=["portal views"], responses=ERROR_RESPONSES)

Bounds = Annotated[Span, Depends(bounds_of)]
TRAIL_LONGEST = timedelta(days=31)
Month = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (local).")]
BuildingFigures = tuple[Points, float | None, float]


class MeterSeries(Series):
    serial: str
    utility: str
    forecast: float | None = Field(
        None, description="balance's degree-day month-end forecast for this meter, if any."
    )


NotComputed = Literal[
    "no_heat_data", "no_building_data", "no_flat_delta_t", "no_building_delta_t", "no_area"
]


class Coefficients(BaseModel):
    consumption: float | None = Field(description="My heat / the average flat's heat.")
    temperature: float | None = Field(description="My mean ΔT / the building's mean flat ΔT.")
    efficiency: float | None = Field(description="My kWh per m² / the building's kWh per m².")
    why_not: dict[str, NotComputed] = Field(
        default_factory=dict,
        description="Why a coefficient is null, per coefficient: no_heat_data (no heat of "
        "this flat in the month), no_building_data (no average flat), no_flat_delta_t (the "
        "flat has no supply/return sensor pair, e.g. on a riser distributor), "
        "no_building_delta_t, no_area.",
    )


class Forecast(BaseModel):
    """The one month-end forecast of the flat's heat (common share included) and its basis."""

    kwh: float | None
    basis: Literal["degree_days", "days", "complete", "no_data"] = Field(
        description="degree_days: month-to-date x the month's heating degree-days / those "
        "so far (balance's figures); days: month-to-date x the month's hours / the hours so "
        "far (no degree-days yet); complete: the month is over, the figure is what was "
        "used; no_data: nothing to forecast from."
    )
    hdd_to_date: float | None = None
    hdd_month: float | None = None
    hours_to_date: float
    hours_in_month: float


class Profile(BaseModel):
    flat: FlatContext
    month: str
    resolution: Literal["hour", "day"]
    heat: Series
    building_average: Series
    meters: list[MeterSeries]
    month_to_date_kwh: float | None = Field(description="null when the month has no data.")
    forecast_kwh: float | None = Field(description="forecast.kwh (kept for integrators).")
    forecast: Forecast
    coefficients: Coefficients
    exchanges: list[ExchangeMarker] = Field(
        default_factory=list,
        description="Meter exchanges in the month: where the old meter's series ends and the "
        "new one's begins (the heat runs on across them).",
    )


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
    an average comparable user (same building, same number of rooms).

    Every comparison covers the same span: while the month runs (or its data stops early),
    the first ``days_compared`` days of each month, never a part against a whole. A figure
    without any data in its span is null ("no data"), never 0."""

    flat_id: int
    month: str
    days_in_month: float
    days_compared: float = Field(description="Days from the month's start each figure covers.")
    partial: bool = Field(description="True when days_compared < days_in_month.")
    kwh: float | None
    previous_month_kwh: float | None
    same_month_last_year_kwh: float | None
    comparable_user_kwh: float | None
    days_with_data: float = Field(description="Days of data inside the compared span.")
    previous_month_days_with_data: float
    same_month_last_year_days_with_data: float
    change_vs_previous_pct: float | None
    change_vs_last_year_pct: float | None
    change_vs_comparable_pct: float | None = None


class HeatParts(BaseModel):
    total_kwh: float | None
    measured_kwh: float | None = Field(description="What the flat's own meters measured.")
    common_kwh: float | None = Field(
        description="The flat's share of the building's common heat (building meter minus "
        "the flats), shared by the methodology."
    )
    adjustment_kwh: float | None = Field(
        description="Moved by the methodology's minimum charge or plausibility cap."
    )
    common_share_pct: float | None
    hours: int = Field(description="Hours with data.")
    estimated_hours: int = Field(
        description="Hours estimated: from comparable flats (no own data), or from the "
        "neighbours or the flat's history (a faulty sensor, see sensor_estimates)."
    )


class SensorEstimateNote(BaseModel):
    """Why and how hours of the flat were estimated: balance's faulty_sensor alert named a
    temperature sensor its heat rests on (allocation's ``allocation_sensor_estimates``)."""

    alert_id: int
    module_serial: int = Field(description="The sensor pair's module.")
    sensor: str = Field(description="The faulty sensor: supply, return or pair (both).")
    shape: str = Field(description="The fault: displaced, swapped, detached, drifting, frozen.")
    method: str = Field(
        description="cascade: from the neighbours' temperatures along the single-pipe riser; "
        "history: from the pair's ΔT against its peers' before the fault."
    )
    first_hour: datetime
    last_hour: datetime | None = Field(description="Null while the alert is open.")


class TrailHour(BaseModel):
    """One hour of the flat's heat with what produced it (allocation's trail)."""

    t: datetime
    total_kwh: float
    measured_kwh: float = Field(description="What the flat's own meters measured.")
    common_kwh: float = Field(description="The flat's share of the common heat.")
    adjustment_kwh: float = Field(description="Moved by the minimum charge or a cap.")
    estimated: bool = Field(
        description="Estimated: from comparable flats (no own data), or a faulty sensor's "
        "temperatures estimated (sensor_estimate)."
    )
    method: str = Field(description="How the measured part was obtained (allocation's name).")
    volume_m3: float | None
    delta_t_k: float | None
    k_kwh_per_m3k: float | None
    sensor_estimate: SensorEstimateNote | None = Field(
        None, description="Set when the hour's temperatures were estimated (a faulty sensor)."
    )


class Explanation(BaseModel):
    """The flat's heat for a month, a day or a range, part by part, with the methodology
    that shared it (from allocation's explanation trail, ``heat_allocation``)."""

    flat_id: int
    month: str
    day: date | None = Field(None, description="Set when one day was asked.")
    start: datetime = Field(description="The period's start (inclusive).")
    end: datetime = Field(description="The period's end (exclusive).")
    layout: str
    hours_in_month: float = Field(description="Hours of the period (the month, or the day).")
    parts: HeatParts
    methodology: dict[str, object]
    hours: list[TrailHour] | None = Field(
        None, description="With from/to: the period hour by hour (at most 31 days)."
    )
    sensor_estimates: list[SensorEstimateNote] = Field(
        default_factory=list,
        description="Faulty-sensor alerts whose hours of the period were estimated.",
    )


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
    building_heat_last_30d: Series = Field(
        description="The building heat meter per local day (kWh, balance's building group; "
        "the meter's own series before balance's first analysis)."
    )
    flats_measured_last_30d: Series = Field(
        description="The flats' metered heat per local day, the same days (kWh)."
    )


FLAT_CONTEXT = """
select f.id as flat_id, f.building_id, f.number, f.rooms, f.area_m2::float8 as area_m2, s.timezone
from flats f join buildings b on b.id = f.building_id join sites s on s.id = b.site_id"""
"""A flat's :class:`FlatContext` (``f``: the flat)."""


async def flat_context(pool: asyncpg.Pool, who: Principal, flat_id: int) -> FlatContext:
    """The flat's building, number, rooms, area and time zone: a consumer's own flat as read
    with their principal (kept with it, see ``principal_cache``), any other from the
    database."""
    check_flat(who, flat_id)
    own = who.own_flat
    if own is not None and own.flat_id == flat_id:
        return own
    row = await pool.fetchrow(f"{FLAT_CONTEXT} where f.id = $1", flat_id)
    if row is None:
        raise not_found("flat")
    return FlatContext(**row)


def _coefficients(
    mine: float | None,
    average: float | None,
    delta_t: tuple[float | None, float | None],
    area: float,
    mean_area: float,
) -> Coefficients:
    """The three ratios, and for each one that cannot be computed, why."""
    why: dict[str, NotComputed] = {}
    consumption = efficiency = temperature = None
    if mine is None:
        why["consumption"] = why["efficiency"] = "no_heat_data"
    elif not average:
        why["consumption"] = why["efficiency"] = "no_building_data"
    else:
        consumption = mine / average
        if area and mean_area:
            efficiency = (mine / area) / (average / mean_area)
        else:
            why["efficiency"] = "no_area"
    mine_dt, building_dt = delta_t
    if mine_dt is None:
        why["temperature"] = "no_flat_delta_t"
    elif not building_dt:
        why["temperature"] = "no_building_delta_t"
    else:
        temperature = mine_dt / building_dt
    return Coefficients(
        consumption=consumption, temperature=temperature, efficiency=efficiency, why_not=why
    )


def _hours(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


def _forecast(span: TimeRange, month: allocation.FlatMonth) -> Forecast:
    """One forecast of the flat's whole heat: scaled by heating degree-days where balance
    has them for the building's month, else by hours; the basis is part of the answer."""
    in_month = _hours(span.start, span.end)
    mine, dd = month.total, month.degree_days
    if mine is None or month.last_hour is None:
        return Forecast(kwh=None, basis="no_data", hours_to_date=0, hours_in_month=in_month)
    to_date = _hours(span.start, min(span.end, month.last_hour + timedelta(hours=1)))
    if datetime.now(UTC) >= span.end:
        return Forecast(kwh=mine, basis="complete", hours_to_date=to_date, hours_in_month=in_month)
    if dd is not None and dd["hdd_to_date"] > 0:
        return Forecast(
            kwh=mine * dd["hdd_month"] / dd["hdd_to_date"],
            basis="degree_days",
            hdd_to_date=dd["hdd_to_date"],
            hdd_month=dd["hdd_month"],
            hours_to_date=to_date,
            hours_in_month=in_month,
        )
    return Forecast(
        kwh=mine * in_month / to_date,
        basis="days",
        hours_to_date=to_date,
        hours_in_month=in_month,
    )


async def _delta_t(
    pool: asyncpg.Pool, span: TimeRange, building_id: int, flat_id: int | None
) -> float | None:
    return await ingest.mean_flat_delta_t(pool, building_id, flat_id, span.start, span.end)


async def building_figures(
    pool: asyncpg.Pool, flat: FlatContext, span: TimeRange, resolution: str
) -> BuildingFigures:
    """The average flat's series, the building's mean flat ΔT and mean flat area."""
    average = await allocation.building_average(
        pool, flat.building_id, "heat", span.start, span.end, resolution, flat.timezone
    )
    delta_t = await _delta_t(pool, span, flat.building_id, None)
    area = await pool.fetchval(
        "select coalesce(avg(area_m2), 0)::float8 from flats where building_id = $1",
        flat.building_id,
    )
    return average, delta_t, float(area)


async def profile_body(
    pool: asyncpg.Pool,
    flat: FlatContext,
    span: TimeRange,
    first: date,
    resolution: Literal["hour", "day"],
    figures: BuildingFigures,
) -> bytes:
    """The profile's JSON over ``span`` of the month ``first``: what the route answers live
    and what ``profile_keeper`` keeps for a closed month (the same bytes)."""
    mine = await allocation.flat_month(
        pool, flat.flat_id, flat.building_id, span.start, span.end, resolution, flat.timezone,
        first,
    )  # fmt: skip
    average, building_dt, mean_area = figures
    forecast = _forecast(span, mine)
    coefficients = _coefficients(
        mine.total, average.total, (mine.delta_t, building_dt), flat.area_m2, mean_area
    )
    return dict_bytes(
        {
            "flat": flat.model_dump(),
            "month": first.strftime("%Y-%m"),
            "resolution": resolution,
            "heat": series(mine.heat, "kWh", resolution, flat.timezone, flat_id=flat.flat_id),
            "building_average": series(average, "kWh", resolution, flat.timezone),
            "meters": [
                {
                    **series(
                        m["points"], m["unit"], resolution, flat.timezone, meter_id=m["meter_id"]
                    ),
                    **{k: m[k] for k in ("serial", "utility", "forecast")},
                }
                for m in mine.meters
            ],
            "month_to_date_kwh": mine.total,
            "forecast_kwh": forecast.kwh,
            "forecast": forecast.model_dump(),
            "coefficients": coefficients.model_dump(),
            "exchanges": mine.exchanges,
        }
    )


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
    as its own series, month-to-date, the forecast to the month's end, the coefficients.
    A closed month over the whole month (not a tenant's part of it) is answered from its
    kept answer when there is one (docs/api.md, Kept answers)."""
    flat = await flat_context(pool, who, flat_id)
    first = parse_month(month) if month else this_month(flat.timezone)
    keeping = request.app.state.settings.api_keep_months > 0
    if month and keeping and not request.scope.get(kept_profiles.ASKED):
        kept = await kept_profiles.answer(pool, who, flat, first, resolution)
        if kept is not None:
            return raw_json(kept)
    span = held_window(who, month_range(first, flat.timezone), flat.timezone)
    figures = await request.app.state.cache.get(
        ("building", flat.building_id, span.start, resolution),
        lambda: building_figures(pool, flat, span, resolution),
    )
    return raw_json(await profile_body(pool, flat, span, first, resolution, figures))


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
    # a consumer sees the days their account holds the flat, not another tenant's
    span, before = (held_window(who, w, flat.timezone) for w in (span, before))
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
            "current": series(current, "kWh", resolution, flat.timezone, flat_id=flat_id),
            "last_year": series(last, "kWh", resolution, flat.timezone, flat_id=flat_id),
        }
    )


@router.get("/flats/{flat_id}/readings", response_model=DayReadings)
async def readings_on(
    flat_id: int, pool: Pool, who: Reader, day: Annotated[date, Query(alias="date")]
) -> DayReadings:
    """Each meter's register at the end of a local day (the calendar on the portal)."""
    flat = await flat_context(pool, who, flat_id)
    end = day_range(day, flat.timezone).end
    held = held_window(who, day_range(day, flat.timezone), flat.timezone)
    rows = await ingest.flat_registers_at(pool, flat_id, end) if held.end == end else []
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
                value=r["offset"] + r["count"] * r["weight"] if r["count"] is not None else None,
            )
            for r in rows
        ],
    )


@router.get("/flats/{flat_id}/statement", response_model=Statement)
async def statement(flat_id: int, pool: Pool, who: Reader, month: Month = None) -> Statement:
    """The monthly consumption statement for remotely read heat (EU EED annex VIIa): each
    comparison over the same number of days from the month's start; null = no data.
    (notify's monthly e-mail reads the same ``allocation.flat_statement``.)"""
    flat = await flat_context(pool, who, flat_id)
    first = parse_month(month) if month else this_month(flat.timezone)
    figures = await allocation.flat_statement(
        pool, flat_id, flat.building_id, flat.rooms, first, flat.timezone, datetime.now(UTC)
    )
    kwh, change = figures.kwh, figures.change_pct
    return Statement(
        flat_id=flat_id,
        month=first.strftime("%Y-%m"),
        days_in_month=figures.days_in_month,
        days_compared=figures.days_compared,
        partial=figures.partial,
        kwh=kwh,
        previous_month_kwh=figures.previous_month_kwh,
        same_month_last_year_kwh=figures.same_month_last_year_kwh,
        comparable_user_kwh=figures.comparable_user_kwh,
        days_with_data=figures.days_with_data,
        previous_month_days_with_data=figures.previous_month_days_with_data,
        same_month_last_year_days_with_data=figures.same_month_last_year_days_with_data,
        change_vs_previous_pct=change(kwh, figures.previous_month_kwh),
        change_vs_last_year_pct=change(kwh, figures.same_month_last_year_kwh),
        change_vs_comparable_pct=change(kwh, figures.comparable_user_kwh),
    )


@router.get("/flats/{flat_id}/explain", response_model=Explanation)
async def explain(
    flat_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    month: Month = None,
    day: Annotated[date | None, Query(description="A local day instead of the month.")] = None,
) -> Explanation:
    """The flat's heat of a month (or, with ``day``, of one local day; with ``from`` and
    ``to``, of that range with each hour's trail) part by part (own metered, common share,
    methodology adjustment, estimated hours) with the building's methodology."""
    flat = await flat_context(pool, who, flat_id)
    first = parse_month(month) if month else this_month(flat.timezone)
    if day is not None:
        first = day.replace(day=1)
    span = day_range(day, flat.timezone) if day else month_range(first, flat.timezone)
    ranged = bounds.start is not None or bounds.end is not None
    if ranged:
        span = bounds.resolve(flat.timezone)
        if span.end - span.start > TRAIL_LONGEST:
            raise ApiError(400, f"an hourly explanation covers at most {TRAIL_LONGEST.days} days")
        first = span.start.astimezone(ZoneInfo(flat.timezone)).date().replace(day=1)
    span = held_window(who, span, flat.timezone)
    s = await allocation.flat_heat_summary(pool, flat_id, span.start, span.end)
    estimates = await allocation.flat_sensor_estimates(pool, flat_id, span.start, span.end)
    trail = (
        [
            TrailHour(
                **r,
                sensor_estimate=(e := allocation.estimate_of_hour(estimates, r["t"], r["flags"]))
                and SensorEstimateNote(**e),
            )
            for r in await allocation.flat_heat_trail(pool, flat_id, span.start, span.end)
        ]
        if ranged
        else None
    )
    row = await world.flat_in_building(pool, flat_id)
    methodology = row["methodology"]
    if isinstance(methodology, str):
        methodology = json.loads(methodology)
    return Explanation(
        flat_id=flat_id,
        month=first.strftime("%Y-%m"),
        day=day,
        start=span.start,
        end=span.end,
        layout=row["layout"],
        hours_in_month=_hours(span.start, span.end),
        parts=HeatParts(
            total_kwh=s["total"],
            measured_kwh=s["measured"],
            common_kwh=s["common"],
            adjustment_kwh=s["adjustment"],
            common_share_pct=100.0 * s["common"] / s["total"] if s["total"] else None,
            hours=s["hours"],
            estimated_hours=s["estimated_hours"],
        ),
        methodology=methodology or {},
        hours=trail,
        sensor_estimates=[SensorEstimateNote(**e) for e in estimates],
    )


def _days(row: Any, prefix: str, value: str, flag: str) -> Series:
    """Days of the overview's arrays (``<prefix>_t``, ``value``, ``flag``) as a series."""
    times = row[f"{prefix}_t"] or []
    points = [
        {"value": round(v, 3) if v is not None else None, flag: f}
        for v, f in zip(row[value] or [], row[f"{prefix}_{flag}"] or [], strict=True)
    ]
    body = columns(times, points, "day", row["timezone"], ("value",), (flag,))
    return Series(unit="kWh", values=body.pop("value"), **body)


async def _overview(pool: asyncpg.Pool, building_id: int) -> Overview:
    since = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=30)
    row = await allocation.building_overview(pool, building_id, since)
    if row is None:
        raise not_found("building")
    # balance's one definition of the flats against the building meter (its building heat
    # group), so the overview and the heat group agree; before balance's first analysis
    # the building meter alone
    building_days = _days(row, "days", "days_building", "partial")
    if building_days.start is None:
        building_days = _days(row, "meter", "meter_value", "estimated")
    return Overview(
        building_id=row["id"],
        name=row["name"],
        layout=row["layout"],
        flats=row["flats"],
        meters=row["meters"],
        modules=row["modules"],
        modules_silent_24h=row["modules_silent_24h"],
        modules_low_battery=row["modules_low_battery"],
        open_alerts=row["open_alerts"],
        building_heat_last_30d=building_days,
        flats_measured_last_30d=_days(row, "days", "days_members", "partial"),
    )


@router.get("/buildings/{building_id}/overview", response_model=Overview)
async def overview(building_id: int, request: Request, pool: Pool, who: Staff) -> Response:
    """An operator's summary of a building: equipment, silent and low-battery modules,
    open alerts, daily heat of the building meter against the sum of the flats."""
    check_building(who, building_id)

    async def compute() -> bytes:
        return (await _overview(pool, building_id)).model_dump_json().encode()

    return raw_json(await request.app.state.cache.get(("overview", building_id), compute))


class CardMeter(BaseModel):
    """A meter of the flat with its radio module's last status and its last reading."""

    id: int
    serial: str
    utility: str
    role: str
    unit: str
    has_valve: bool
    valve_state: Literal["open", "closed"] | None = Field(
        description="From the last valve command done (open until one closed it); null "
        "without a valve."
    )
    module_serial: int | None
    battery_mv: int | None
    rssi_dbm: int | None
    hops: int | None
    last_seen: datetime | None
    reading: float | None = Field(description="The last register, in the meter's unit.")
    reading_at: datetime | None


class CardCommand(BaseModel):
    id: str
    meter_id: int
    action: str
    status: str
    detail: str
    requested_by: str
    created_at: datetime


class CardAccount(BaseModel):
    id: int
    number: str
    holder_name: str
    residents: int
    opened_on: date | None = Field(description="null: since metering began.")
    closed_on: date | None = Field(description="null: still the holder.")


class FlatCard(BaseModel):
    """An operator's page of one flat: where it is, its meters and modules, valves and the
    last commands, its account holders over time and its open alerts."""

    flat_id: int
    number: str
    floor: int
    rooms: int
    area_m2: float
    building_id: int
    building_name: str
    address: str
    timezone: str
    meters: list[CardMeter]
    commands: list[CardCommand] = Field(description="The last 10 commands, newest first.")
    accounts: list[CardAccount] = Field(description="Account holders, oldest first.")
    open_alerts: list[AlertPublic]


_CARD_METERS = f"""
select m.id, m.serial, m.utility, m.role, m.unit, m.has_valve, ch.module_serial,
       {VALVE_STATE} as valve_state
from meters m
left join lateral (select module_serial from channels c where c.meter_id = m.id
                   order by c.id desc limit 1) ch on true
where m.flat_id = $1 order by m.id
"""


async def _card_meters(pool: asyncpg.Pool, flat_id: int) -> list[CardMeter]:
    """The flat's meters with their module's last status and their last register, both read
    through ingest's published queries (the register as ingest defines it: offset + count x
    pulse weight within the meter's channel period, so an exchanged meter reads right)."""
    meters = await pool.fetch(_CARD_METERS, flat_id)
    serials = [m["module_serial"] for m in meters if m["module_serial"] is not None]
    status = {
        r["serial"]: r
        for r in await pool.fetch(
            f"{ingest.MODULES_WITH_STATUS} where rm.serial = any($1::bigint[])", serials
        )
    }
    registers = {
        r["id"]: r for r in await ingest.flat_registers_at(pool, flat_id, datetime.now(UTC))
    }
    cards = []
    for m in meters:
        st = status.get(m["module_serial"])
        reg = registers.get(m["id"])
        read = reg if reg is not None and reg["count"] is not None else None
        cards.append(
            CardMeter(
                **m,
                battery_mv=st and st["battery_mv"],
                rssi_dbm=st and st["rssi_dbm"],
                hops=st and st["hops"],
                last_seen=st and st["last_seen"],
                reading=read["offset"] + read["count"] * read["weight"] if read else None,
                reading_at=read["ts"] if read else None,
            )
        )
    return cards


@router.get("/flats/{flat_id}/card", response_model=FlatCard)
async def flat_card(flat_id: int, pool: Pool, who: Staff) -> FlatCard:
    """One flat for an operator: its meters with module status (battery, RSSI, hops, last
    seen), last reading and valve state; the last commands; the account holders over time
    (with ``closed_on`` where accounts have periods); the open alerts."""
    row = await pool.fetchrow(
        """select f.id as flat_id, f.number, f.floor, f.rooms, f.area_m2::float8 as area_m2,
                  b.id as building_id, b.name as building_name, b.address, s.timezone
           from flats f join buildings b on b.id = f.building_id join sites s on s.id = b.site_id
           where f.id = $1""",
        flat_id,
    )
    if row is None:
        raise not_found("flat")
    meters = await _card_meters(pool, flat_id)
    commands = await pool.fetch(
        """select id, meter_id, action, status, detail, requested_by, created_at from commands
           where meter_id = any($1::int[]) order by created_at desc limit 10""",
        [m.id for m in meters],
    )
    accounts = await pool.fetch(
        "select * from accounts where flat_id = $1 order by opened_on nulls first, id", flat_id
    )
    alerts = await pool.fetch(
        f"{balance.ALERT_SUMMARIES} where flat_id = $1 and state = 'open' order by began_at",
        flat_id,
    )
    return FlatCard(
        **row,
        meters=meters,
        commands=[CardCommand(**c) for c in commands],
        accounts=[
            CardAccount(
                id=a["id"],
                number=a["number"],
                holder_name=a["holder_name"],
                residents=a["residents"],
                opened_on=a["opened_on"],
                closed_on=a.get("closed_on"),
            )
            for a in accounts
        ],
        open_alerts=[AlertPublic(**a) for a in alerts],
    )
