"""What allocation publishes: hourly consumption per meter, heat per flat, the building
hours and the completeness watermarks (tables in :mod:`balans_db.tables.allocation`).

Series are bucketed in local time: hours are stored in UTC, days and months are cut in
the site's time zone (the building's local calendar is what people read). Hourly series
skip the bucketing (read in index order, no time-zone arithmetic per row: three times
faster), and PostgreSQL builds the points' JSON: validating and re-encoding hundreds of
points per series in Python was most of a profile request's time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from balans_db.exchanges import MARKERS
from balans_db.queries import Db, balance, ingest

Resolution = Literal["hour", "day", "month"]


@dataclass(frozen=True)
class Points:
    """A series' buckets as PostgreSQL summed them, in the columnar shape the api answers:
    bucket i starts at ``start`` + i steps (an hour, or a local day or month), ``values``
    is their JSON array (rounded; ``null`` where a bucket has no data; from the first
    bucket with data to the last), ``estimated`` and ``partial`` the indices of the flagged
    buckets, ``total`` their sum."""

    start: datetime | None
    values: str
    estimated: list[int]
    partial: list[int]
    total: float

    def parsed(self) -> list[float | None]:
        return json.loads(self.values)


# the values spelled out as text, rounded in float8 (the shortest text that reads back
# as the rounded double): the points as JSON objects cost PostgreSQL about five times
# as much per hour (to_char and numeric rounding per row), and a month profile's hours
# were most of its CPU; the times of the buckets are read only where one is missing
# (``gaps``) and for the flagged ones
_COLUMNAR = """'[' || coalesce(string_agg(
                 coalesce((round(value * f) / f + 0)::text, 'null'), ',' order by t), '')
               || ']' as vals,
               min(t) as first, {gaps} as times,
               string_agg({epoch}, ',' order by t) filter (where estimated) as estimated_t,
               string_agg({epoch}, ',' order by t) filter (where partial) as partial_t,
               round(coalesce(sum(value), 0) * min(f)) / min(f) + 0 as total"""
_EPOCH = "date_part('epoch', t)::int8::text"
_HOURLY_GAPS = f"""case when count(*) <> date_part('epoch', max(t) - min(t)) / 3600 + 1
                       then array_to_string(array_agg({_EPOCH} order by t), ',') end"""
_COLUMNS = ("vals", "first", "times", "estimated_t", "partial_t", "total")


def _columnar(sql: str, decimals: str, resolution: Resolution) -> str:
    """SQL summing the points of ``sql`` (t, value, estimated, partial) to :class:`Points`'
    columns (read back by :func:`_to_points`), rounded to ``decimals`` (SQL, worked out
    once: a meter's decimals computed for each of its hours cost as much as spelling the
    values out). Times are epoch seconds as text (a flat's meters are aggregated into
    arrays, which cannot hold arrays)."""
    gaps = _HOURLY_GAPS if resolution == "hour" else f"string_agg({_EPOCH}, ',' order by t)"
    columns = _COLUMNAR.format(gaps=gaps, epoch=_EPOCH)
    return f"select {columns} from (select 10 ^ ({decimals}) as f offset 0) k, ({sql}) s"


def bucket_index(start: datetime, t: datetime, resolution: Resolution, tz: str) -> int:
    """The index of the bucket beginning at ``t`` in a series beginning at ``start``."""
    if resolution == "hour":
        return int((t - start).total_seconds()) // 3600
    zone = ZoneInfo(tz)
    first, at = start.astimezone(zone).date(), t.astimezone(zone).date()
    if resolution == "day":
        return (at - first).days
    return (at.year - first.year) * 12 + at.month - first.month


def _times(epochs: str | None) -> list[datetime]:
    return [datetime.fromtimestamp(int(e), UTC) for e in epochs.split(",")] if epochs else []


def _to_points(row: Any, resolution: Resolution, tz: str) -> Points:
    """:class:`Points` of a mapping holding :func:`_columnar`'s columns."""
    values, first, times, estimated, partial, total = (row[c] for c in _COLUMNS)
    if first is None:
        return Points(None, "[]", [], [], total or 0.0)

    def index(t: datetime) -> int:
        return bucket_index(first, t, resolution, tz)

    if times and index(last := _times(times)[-1]) != times.count(","):  # buckets missing inside
        spread = ["null"] * (index(last) + 1)
        for t, value in zip(_times(times), values[1:-1].split(","), strict=True):
            spread[index(t)] = value
        values = "[" + ",".join(spread) + "]"
    return Points(
        first, values, [index(t) for t in _times(estimated)], [index(t) for t in _times(partial)],
        total,
    )  # fmt: skip


HEAT_DECIMALS = "3"
"""Allocated heat is a computed share, not one meter's count: kept to the Wh (0.001 kWh)."""


def _weight_decimals(meter: str) -> str:
    """SQL: a meter's resolution as decimals, those of its pulse weight (0.001 m3 -> 3)."""
    return f"scale(trim_scale({meter}.pulse_weight))"


def _bucket(resolution: Resolution, column: str, tz: str, args: list[object]) -> tuple[str, str]:
    """(time expression, GROUP BY clause) for the resolution; appends its parameters."""
    if resolution == "hour":
        return column, ""
    args += [resolution, tz]
    return f"date_trunc(${len(args) - 1}, {column}, ${len(args)})", "group by 1"


def _partial(t: str, hours: str, args: list[object]) -> str:
    """True where a bucket ``t`` (from :func:`_bucket`, whose parameters are the last two
    of ``args``) holds fewer than its local hours (23 to 25 a day, 672 to 744 a month): cut
    by the range, still running, or hours missing."""
    res, tz = f"${len(args) - 1}", f"${len(args)}"
    local_end = f"(({t} at time zone {tz}) + ('1 ' || {res})::interval) at time zone {tz}"
    return f"{hours} < extract(epoch from {local_end} - {t}) / 3600"


def _source(
    table: str, value: str, key: str, resolution: Resolution, tz: str, args: list[object]
) -> str:
    """Points of ``table`` where the condition ``key`` holds; args = [key, start, end]."""
    t, group = _bucket(resolution, "hour", tz, args)
    if group:
        agg = f"sum({value}) as value, bool_or(estimated) as estimated, "
        agg += f"{_partial(t, 'count(*)', args)} as partial"
    else:
        agg = f"{value} as value, estimated, false as partial"
    return f"""select {t} as t, {agg} from {table}
               where {key} and hour >= $2 and hour < $3 {group}"""


async def _points(
    db: Db, sql: str, args: list[object], decimals: str, resolution: Resolution, tz: str
) -> Points:
    """The points of ``sql`` (t, value, estimated, partial) rounded to ``decimals`` (SQL)."""
    row = await db.fetchrow(_columnar(sql, decimals, resolution), *args)
    return _to_points(row, resolution, tz)


def _series_source(
    hours: tuple[str, str],
    days: tuple[str, str],
    key: tuple[str, object],
    start: datetime,
    end: datetime,
    resolution: Resolution,
    tz: str,
    args: list[object],
) -> str:
    """Points of (table, value) ``hours`` in [start, end) where ``key`` (condition, its
    parameter $1) holds; days and months between local midnights from the rollup ``days``
    (table, value: ~30 rows a month instead of ~720). Fills ``args``."""
    first, last = _local_date(start, tz), _local_date(end, tz)
    if resolution != "hour" and first is not None and last is not None:
        args += [key[1], first, last, resolution, tz]
        t = "(date_trunc($4, day)::timestamp at time zone $5)"
        return f"""select {t} as t, sum({days[1]}) as value, bool_or(estimated) as estimated,
                          {_partial(t, "sum(hours)", args)} as partial
                   from {days[0]} where {key[0]} and day >= $2 and day < $3
                   group by 1"""
    args += [key[1], start, end]
    return _source(hours[0], hours[1], key[0], resolution, tz, args)


_CONSUMPTION = ("meter_consumption", "value"), ("meter_consumption_days", "value")
_HEAT = ("heat_allocation", "total_kwh"), ("heat_allocation_days", "total_kwh")


async def meter_series(
    db: Db,
    meter_id: int,
    start: datetime,
    end: datetime,
    resolution: Resolution,
    tz: str,
) -> Points:
    """A meter's consumption in [start, end) per hour, day or month, rounded to the
    meter's resolution."""
    args: list[object] = []
    sql = _series_source(
        *_CONSUMPTION, ("meter_id = $1", meter_id), start, end, resolution, tz, args
    )
    decimals = f"(select {_weight_decimals('m')} from meters m where m.id = $1)"
    return await _points(db, sql, args, decimals, resolution, tz)


async def flat_heat_series(
    db: Db, flat_id: int, start: datetime, end: datetime, resolution: Resolution, tz: str
) -> Points:
    """A flat's allocated heat (total kWh) in [start, end) per hour, day or month."""
    args: list[object] = []
    sql = _series_source(*_HEAT, ("flat_id = $1", flat_id), start, end, resolution, tz, args)
    return await _points(db, sql, args, HEAT_DECIMALS, resolution, tz)


def _local_date(instant: datetime, tz: str) -> date | None:
    """The local date of ``instant`` if it is a local midnight, else None."""
    local = instant.astimezone(ZoneInfo(tz))
    return local.date() if local.time() == time() else None


# the local days' bounds are computed once per range (materialized), so the hours are read
# through the (building or meter, hour) index between them: with the bounds worked out per
# row after the join, PostgreSQL read every hour the building ever had and filtered
_RANGES = """
with ranges as materialized (
  select g.*, (g.d0::timestamp at time zone g.tz) as lo,
         ((g.d1 + 1)::timestamp at time zone g.tz) as hi
  from (select r.building_id, s.timezone as tz, (r.first at time zone s.timezone)::date as d0,
               (r.last at time zone s.timezone)::date as d1
        from unnest($1::int[], $2::timestamptz[], $3::timestamptz[]) as r(building_id, first, last)
        join buildings b on b.id = r.building_id join sites s on s.id = b.site_id) g
)"""
_IN_RANGE = "{alias}.hour >= g.lo and {alias}.hour < g.hi"

_REFRESH_HEAT_DAYS = f"""{_RANGES}
insert into heat_allocation_days (flat_id, day, building_id, total_kwh, hours, estimated)
select h.flat_id, (h.hour at time zone g.tz)::date, h.building_id,
       sum(h.total_kwh order by h.hour), count(*), bool_or(h.estimated)
from ranges g join heat_allocation h
  on h.building_id = g.building_id and {_IN_RANGE.format(alias="h")}
group by 1, 2, 3
order by 2, 1
on conflict (flat_id, day) do update
set building_id = excluded.building_id, total_kwh = excluded.total_kwh,
    hours = excluded.hours, estimated = excluded.estimated
"""

# one statement: the days with hours are upserted, the days left without hours (an old
# meter's after an exchange recorded late) deleted; the two sets are disjoint
_REFRESH_CONSUMPTION_DAYS = f"""{_RANGES},
days as (
  select c.meter_id, (c.hour at time zone g.tz)::date as day, g.building_id,
         sum(c.value order by c.hour) as value, count(*) as hours,
         bool_or(c.estimated) as estimated
  from ranges g
  -- the building's meters' hours through (meter_id, hour) between the bounds, one index
  -- scan per building for all its meters; "offset 0" keeps the subquery from being
  -- flattened into a hash join over all of meter_consumption
  cross join lateral (select c.meter_id, c.hour, c.value, c.estimated from meter_consumption c
                      where c.meter_id = any(array(select m.id from meters m
                                                   where m.building_id = g.building_id))
                        and {_IN_RANGE.format(alias="c")} offset 0) c
  group by 1, 2, 3
),
upserted as (
  insert into meter_consumption_days as t (meter_id, day, building_id, value, hours, estimated)
  select * from days order by day, meter_id
  on conflict (meter_id, day) do update
  set value = excluded.value, hours = excluded.hours, estimated = excluded.estimated
  where (t.value, t.hours, t.estimated)
        is distinct from (excluded.value, excluded.hours, excluded.estimated)
)
delete from meter_consumption_days d using ranges g
where d.building_id = g.building_id and d.day between g.d0 and g.d1
  and not exists (select from days x where x.meter_id = d.meter_id and x.day = d.day)
"""


async def refresh_days(db: Db, spans: list[tuple[int, datetime, datetime]]) -> None:
    """Rebuild ``heat_allocation_days`` and ``meter_consumption_days`` from the hours for
    every local day touched by the (building id, first hour, last hour) spans: what
    allocation runs in the transaction that writes hours (idempotent: a day is always the
    sum of its hours, added in hour order; a meter's day left without hours goes).

    New day rows are inserted day by day (``order by`` day, then flat or meter), as the
    hourly :func:`extend_days` inserts them, so a day's rows share pages: each hour
    updates every flat's and meter's row of its day in place, and laid out flat by flat
    (a flat's days side by side) those updates dirtied a page per flat and meter."""
    if not spans:
        return
    columns = [list(column) for column in zip(*spans, strict=True)]
    for sql in (_REFRESH_HEAT_DAYS, _REFRESH_CONSUMPTION_DAYS):
        await db.execute(sql, *columns)


# the new hours of a building are added to their days' stored sums, in hour order after the
# stored sum (a day's hours are summed in hour order from its first, so this is the very
# sequence of additions a rebuild of the day ends with, to the bit)
_EXTEND = """
{kind}_new as materialized (
  select {key} as key, ({alias}.hour at time zone f.tz)::date as day, f.building_id, {alias}.hour,
         {alias}.{value} as value, {alias}.estimated
  from {{{kind}}} {alias} join fresh f on f.building_id = {alias}.building_id
   and {alias}.hour = f.hour
),
{kind}_days as (
  insert into {days} as t ({key_column}, day, building_id, {value}, hours, estimated)
  select x.key, x.day, max(x.building_id) filter (where x.stored is null),
         sum(x.value order by x.hour), sum(x.hours)::int, bool_or(x.estimated)
  from (select key, day, building_id, hour, value, 1 as hours, estimated, null as stored
        from {kind}_new
        union all
        select d.{key_column}, d.day, d.building_id, '-infinity', d.{value}, d.hours,
               d.estimated, true
        from {days} d join (select distinct key, day from {kind}_new) k
          on d.{key_column} = k.key and d.day = k.day) x
  group by x.key, x.day
  order by x.day, x.key
  on conflict ({key_column}, day) do update
  set building_id = excluded.building_id, {value} = excluded.{value},
      hours = excluded.hours, estimated = excluded.estimated
  returning 1
)"""
_EXTEND_DAYS = (
    """
with fresh as materialized (
  select w.building_id, w.hour, s.timezone as tz
  from unnest($1::int[], $2::timestamptz[]) as w(building_id, hour)
  join buildings b on b.id = w.building_id join sites s on s.id = b.site_id
),"""
    + _EXTEND.format(
        kind="heat", key="h.flat_id", alias="h", value="total_kwh", days="heat_allocation_days",
        key_column="flat_id",
    )
    + ","
    + _EXTEND.format(
        kind="consumption", key="c.meter_id", alias="c", value="value",
        days="meter_consumption_days", key_column="meter_id",
    )
    + "\nselect (select count(*) from heat_days) + (select count(*) from consumption_days)"
)  # fmt: skip


async def extend_days(
    db: Db, heat: str, consumption: str, new_hours: dict[int, Sequence[datetime]]
) -> None:
    """Add each building's new hours to their days, both day tables in one statement,
    instead of rebuilding each touched day from all of its hours (about 24 hour rows per
    flat and meter for every hourly event, and as many again for every hour of a catch-up).

    ``heat`` and ``consumption`` name relations holding the rows just written (the
    ``heat_allocation`` columns; the ``meter_consumption`` columns and ``building_id``);
    ``new_hours`` gives, per building, the hours that are new to the tables: no row of the
    building was stored at or after the first of them before, so each touched day's stored
    sum covers only earlier hours, and adding the new hours to it in hour order is what
    :func:`refresh_days` would make of the day. Other rows of the relations are ignored."""
    pairs = [(b, hour) for b, hours in new_hours.items() for hour in hours]
    if pairs:
        await db.execute(
            _EXTEND_DAYS.format(heat=heat, consumption=consumption),
            [b for b, _ in pairs], [hour for _, hour in pairs],
        )  # fmt: skip


async def building_average(
    db: Db,
    building_id: int,
    utility: str,
    start: datetime,
    end: datetime,
    resolution: Resolution,
    tz: str,
) -> Points:
    """The average flat's consumption per bucket. Heat: allocation's building hours
    (Σ flat totals = the building meter, docs/allocation.md) over the number of flats, one
    row per hour; without them, the mean of each flat's bucket total from the flat rows."""
    if utility == "heat":
        args: list[object] = [building_id, start, end]
        t, group = _bucket(resolution, "hour", tz, args)
        value = "sum(building_kwh)" if group else "building_kwh"
        partial = _partial(t, "count(*)", args) if group else "false"
        points = await _points(
            db,
            f"""select {t} as t, {value} / greatest(
                       (select count(*) from flats where building_id = $1), 1) as value,
                       false as estimated, {partial} as partial
                from allocation_building_hours
                where building_id = $1 and hour >= $2 and hour < $3 {group}""",
            args,
            HEAT_DECIMALS,
            resolution,
            tz,
        )
        if points.start is not None:
            return points
    args = [building_id, start, end]
    t, group = _bucket(resolution, "hour", tz, args)
    partial = f"bool_or({_partial('t', 'hours', args)})" if group else "false"
    if utility == "heat":
        inner = f"""select flat_id as k, {t} as t, sum(total_kwh) as value, count(*) as hours
                    from heat_allocation
                    where building_id = $1 and hour >= $2 and hour < $3 group by 1, 2"""
    else:
        args.append(utility)
        inner = f"""select mc.meter_id as k, {t.replace("hour", "mc.hour")} as t,
                           sum(mc.value) as value, count(*) as hours
                    from meter_consumption mc join meters m on m.id = mc.meter_id
                    where m.building_id = $1 and m.role = 'flat' and m.utility = ${len(args)}
                      and mc.hour >= $2 and mc.hour < $3 group by 1, 2"""
    sql = f"""select t, avg(value) as value, false as estimated, {partial} as partial
              from ({inner}) x group by t"""
    decimals = HEAT_DECIMALS if utility == "heat" else "3"
    return await _points(db, sql, args, decimals, resolution, tz)


@dataclass(frozen=True)
class FlatMonth:
    """What a flat's month profile needs, read in one query (:func:`flat_month`)."""

    heat: Points
    meters: list[dict[str, Any]]  # meter_id, serial, utility, unit, points, forecast
    total: float | None  # the flat's heat in the span (null without hours)
    last_hour: datetime | None  # its last hour with heat
    delta_t: float | None  # the flat's mean supply - return (ingest)
    degree_days: dict[str, Any] | None  # balance's hdd_to_date, hdd_month, as_of
    exchanges: list[dict[str, Any]]  # meter exchanges in the span (at, utility, ...)


_MARKER_JSON = """coalesce(json_agg(json_build_object(
    'at', to_char(x.at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
    'utility', x.utility, 'old_meter', x.old_meter, 'new_meter', x.new_meter,
    'flat', x.flat, 'riser', x.riser)), '[]')::text"""


async def flat_month(
    db: Db,
    flat_id: int,
    building_id: int,
    start: datetime,
    end: datetime,
    resolution: Resolution,
    tz: str,
    month: date,
) -> FlatMonth:
    """In one round trip, over [start, end): the flat's heat series (as
    :func:`flat_heat_series`), each of its meters with its series (rounded to the meter's
    resolution, the decimals of its pulse weight) and balance's month-end forecast for
    ``month`` (None where balance has none), the flat's heat total and last hour with heat,
    its mean ΔT (``ingest.MEAN_FLAT_DELTA_T``), the building's degree-days of ``month``
    (``balance.BUILDING_DEGREE_DAYS``) and the exchanges on its meters
    (``exchanges.MARKERS``)."""
    args: list[object] = []
    heat = _series_source(*_HEAT, ("flat_id = $1", flat_id), start, end, resolution, tz, args)
    points = _series_source(
        *_CONSUMPTION, ("meter_id = m.id", flat_id), start, end, resolution, tz, []
    )  # the same parameters as the heat's
    args += [start, end, building_id, month]
    s, e, b, mo = (f"${len(args) - 3 + i}" for i in range(4))
    meter_series = _columnar(points, _weight_decimals("m"), resolution)
    row = await db.fetchrow(
        f"""select {", ".join(f"h.{c} as heat_{c}" for c in _COLUMNS)},
                   ms.*, su.total, su.last_hour,
                   dt.delta_t::float8 as delta_t, dd.hdd_to_date, dd.hdd_month, dd.as_of,
                   ex.json as exchanges
            from ({_columnar(heat, HEAT_DECIMALS, resolution)}) h
            cross join lateral (
              select array_agg(m.id order by m.id) as ids,
                     array_agg(m.serial order by m.id) as serials,
                     array_agg(m.utility order by m.id) as utilities,
                     array_agg(m.unit order by m.id) as units,
                     array_agg(p.vals order by m.id) as m_vals,
                     array_agg(p.first order by m.id) as m_first,
                     array_agg(p.times order by m.id) as m_times,
                     array_agg(p.estimated_t order by m.id) as m_estimated_t,
                     array_agg(p.partial_t order by m.id) as m_partial_t,
                     array_agg(p.total order by m.id) as m_total,
                     array_agg((select forecast_total from forecasts
                                where scope = 'meter' and scope_id = m.id and month = {mo})
                               order by m.id) as forecasts
              from meters m, lateral ({meter_series}) p
              where m.flat_id = $1) ms
            cross join lateral (
              select sum(total_kwh)::float8 as total, max(hour) as last_hour
              from heat_allocation where flat_id = $1 and hour >= {s} and hour < {e}) su
            cross join lateral ({
            ingest.MEAN_FLAT_DELTA_T.format(building=b, flat="$1", start=s, end=e)
        }) dt
            left join lateral ({balance.BUILDING_DEGREE_DAYS.format(building=b, month=mo)}) dd
              on true
            cross join lateral (
              select {_MARKER_JSON} as json from ({
            MARKERS.format(where=f"m.flat_id = $1 and n.valid_from >= {s} and n.valid_from < {e}")
        }) x) ex""",
        *args,
    )
    ids = row["ids"] or []
    meters = [
        {
            "meter_id": meter_id,
            "serial": row["serials"][i],
            "utility": row["utilities"][i],
            "unit": row["units"][i],
            "points": _to_points({c: row["m_" + c][i] for c in _COLUMNS}, resolution, tz),
            "forecast": row["forecasts"][i],
        }
        for i, meter_id in enumerate(ids)
    ]
    degree_days = (
        {k: row[k] for k in ("hdd_to_date", "hdd_month", "as_of")}
        if row["hdd_to_date"] is not None
        else None
    )
    return FlatMonth(
        heat=_to_points({c: row["heat_" + c] for c in _COLUMNS}, resolution, tz),
        meters=meters,
        total=row["total"],
        last_hour=row["last_hour"],
        delta_t=row["delta_t"],
        degree_days=degree_days,
        exchanges=json.loads(row["exchanges"]),
    )


async def flat_heat_hours(
    db: Db, flat_id: int, start: datetime, end: datetime, limit: int
) -> list[Any]:
    """A flat's first ``limit`` heat rows in [start, end): t, measured, common, total kWh
    (to the Wh), estimated, flags."""
    return await db.fetch(
        f"""select hour as t, round(measured_kwh::numeric, {HEAT_DECIMALS})::float8 as measured_kwh,
                  round(common_kwh::numeric, {HEAT_DECIMALS})::float8 as common_kwh,
                  round(total_kwh::numeric, {HEAT_DECIMALS})::float8 as total_kwh,
                  estimated, flags
           from heat_allocation where flat_id = $1 and hour >= $2 and hour < $3
           order by hour limit $4""",
        flat_id,
        start,
        end,
        limit,
    )


async def any_heat(db: Db, flat_ids: list[int], start: datetime, end: datetime) -> bool:
    """Whether any of the flats has allocated heat in [start, end)."""
    return bool(
        await db.fetchval(
            """select exists(select 1 from heat_allocation
                             where flat_id = any($1::int[]) and hour >= $2 and hour < $3)""",
            flat_ids,
            start,
            end,
        )
    )


async def flat_heat_total(db: Db, flat_id: int, start: datetime, end: datetime) -> float:
    """A flat's allocated heat in [start, end), kWh."""
    value = await db.fetchval(
        """select coalesce(sum(total_kwh), 0) from heat_allocation
           where flat_id = $1 and hour >= $2 and hour < $3""",
        flat_id,
        start,
        end,
    )
    return float(value)


async def comparable_flats_heat(
    db: Db, building_id: int, rooms: int, start: datetime, end: datetime
) -> float | None:
    """The mean heat in [start, end) of the building's flats with ``rooms`` rooms."""
    value = await db.fetchval(
        """select avg(kwh) from (
             select f.id, coalesce(sum(h.total_kwh), 0) as kwh from flats f
             left join heat_allocation h on h.flat_id = f.id and h.hour >= $3 and h.hour < $4
             where f.building_id = $1 and f.rooms = $2 group by f.id) x""",
        building_id,
        rooms,
        start,
        end,
    )
    return float(value) if value is not None else None


async def flats_heat(db: Db, building_id: int, start: datetime, end: datetime) -> list[Any]:
    """Every flat of the building (id, number, area_m2) with its heat in [start, end)
    as exact ``kwh`` (0 without allocation rows), by flat id."""
    return await db.fetch(
        """select f.id, f.number, f.area_m2, coalesce(sum(h.total_kwh::numeric), 0) as kwh
           from flats f left join heat_allocation h
             on h.flat_id = f.id and h.hour >= $2 and h.hour < $3
           where f.building_id = $1 group by f.id order by f.id""",
        building_id,
        start,
        end,
    )


_FLAT_GROUPINGS = {
    "entrance": (
        "(select id, building_id, 'Entrance ' || number as name from entrances)",
        "f.entrance_id = g.id",
    ),
    "riser": (
        "(select id, building_id, 'Riser ' || number as name from risers)",
        "f.id in (select flat_id from radiators r where r.riser_id = g.id)",
    ),
}

_GROUPED_HEAT = """
select g.name as name, g.id as group_id, count(distinct f.id) as flats,
       sum(f.area_m2)::float8 as area_m2, coalesce(sum(h.kwh), 0) as kwh
from {groups} g
join flats f on {join}
left join (select flat_id, sum(total_kwh) as kwh from heat_allocation
           where building_id = $1 and hour >= $2 and hour < $3 group by flat_id) h
  on h.flat_id = f.id
where g.building_id = $1
group by g.id, g.name
"""


async def heat_by_flat_group(
    db: Db,
    building_id: int,
    grouping: Literal["entrance", "riser"],
    start: datetime,
    end: datetime,
) -> list[Any]:
    """Per entrance or riser of the building: name, group_id, flats, area_m2 and the
    flats' heat in [start, end) (kwh)."""
    groups, join = _FLAT_GROUPINGS[grouping]
    return await db.fetch(_GROUPED_HEAT.format(groups=groups, join=join), building_id, start, end)


_BUILDING_METER_HEAT_DAYS = """
select date_trunc('day', mc.hour, {tz}) as t, sum(mc.value) as value,
       bool_or(mc.estimated) as estimated
from meter_consumption mc join meters m on m.id = mc.meter_id
where m.building_id = {building} and m.role = 'building' and m.utility = 'heat'
  and mc.hour >= {since}
group by 1"""


async def building_overview(db: Db, building_id: int, since: datetime) -> Any:
    """An operator's overview of a building in one query: its equipment
    (``ingest.BUILDING_EQUIPMENT``), its open alerts (``balance.OPEN_ALERT_COUNT``) and,
    per local day since ``since``, balance's building meter against its members
    (``balance.BUILDING_HEAT_DAYS``: ``days_t``, ``days_building``, ``days_members``,
    ``days_partial``) and the building heat meter's own consumption (``meter_t``,
    ``meter_value``, ``meter_estimated``, for before balance's first analysis), as arrays
    by day, and the site's ``timezone``; None if there is no such building."""
    tz = "(select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1)"
    days = balance.BUILDING_HEAT_DAYS.format(building="$1", since="$2", tz=tz)
    meter = _BUILDING_METER_HEAT_DAYS.format(building="$1", since="$2", tz=tz)
    return await db.fetchrow(
        f"""select e.*, a.open_alerts, d.*, mt.*, coalesce({tz}, 'UTC') as timezone
            from ({ingest.BUILDING_EQUIPMENT.format(building="$1")}) e
            cross join ({balance.OPEN_ALERT_COUNT.format(building="$1")}) a
            cross join (select array_agg(t order by t) as days_t,
                               array_agg(building_value order by t) as days_building,
                               array_agg(members_value order by t) as days_members,
                               array_agg(partial order by t) as days_partial
                        from ({days}) x) d
            cross join (select array_agg(t order by t) as meter_t,
                               array_agg(value order by t) as meter_value,
                               array_agg(estimated order by t) as meter_estimated
                        from ({meter}) y) mt""",
        building_id,
        since,
    )


async def flat_consumption(
    db: Db, building_id: int, start: datetime, end: datetime
) -> dict[tuple[int, str], Decimal]:
    """(flat id, utility) -> consumption in [start, end): heat in kWh from heat_allocation,
    the other utilities in their meters' unit (m3 or kWh) from meter_consumption."""
    rows = await db.fetch(
        """select flat_id, 'heat' as utility, sum(total_kwh::numeric) as used
           from heat_allocation
           where building_id = $1 and hour >= $2 and hour < $3 group by flat_id
           union all
           select m.flat_id, m.utility, sum(c.value::numeric)
           from meter_consumption c join meters m on m.id = c.meter_id
           where m.building_id = $1 and m.role = 'flat' and m.utility <> 'heat'
             and c.hour >= $2 and c.hour < $3
           group by m.flat_id, m.utility""",
        building_id,
        start,
        end,
    )
    return {(r["flat_id"], r["utility"]): r["used"] for r in rows}


async def measured_consumption_positions(
    db: Db, meter_ids: list[int], first: datetime, last: datetime
) -> list[Any]:
    """Per meter, its measured (not estimated) hours in [first, last] as positions (hours
    after ``first``) and their values: one row per meter (``meter_id``, ``positions``,
    ``values_``), as a window is ~100 000 values and one record per value would cost more
    to decode than the query itself."""
    return await db.fetch(
        """select meter_id, array_agg((extract(epoch from hour - $2::timestamptz) / 3600)::int)
                  positions, array_agg(value::float8) values_
           from meter_consumption
           where meter_id = any($1::int[]) and hour >= $2 and hour <= $3 and not estimated
           group by meter_id""",
        meter_ids,
        first,
        last,
    )


async def complete_buildings(db: Db) -> list[Any]:
    """Every building with an allocation watermark, by building id: ``building_id``,
    ``complete_until`` (its hours are complete up to there), its site's ``timezone`` and
    its ``first_hour`` of allocated heat (None before any)."""
    return await db.fetch(
        """select w.building_id, w.complete_until, s.timezone,
                  (select min(h.hour) from heat_allocation h where h.building_id = w.building_id)
                      as first_hour
           from allocation_watermarks w
           join buildings b on b.id = w.building_id
           join sites s on s.id = b.site_id
           order by w.building_id"""
    )


async def estimated_shares(db: Db, window: timedelta) -> dict[str, float]:
    """utility -> share of estimated hourly consumption values within ``window`` (wall
    clock: only recent partitions are read)."""
    rows = await db.fetch(
        """select m.utility, avg(case when c.estimated then 1.0 else 0.0 end)::float8 as share
           from meter_consumption c join meters m on m.id = c.meter_id
           where c.hour > now() - $1::interval
           group by m.utility""",
        window,
    )
    return {row["utility"]: row["share"] for row in rows}


async def flat_heat_summary(db: Db, flat_id: int, start: datetime, end: datetime) -> Any:
    """A flat's heat in [start, end) by part: ``total``, ``measured``, ``common`` and
    ``adjustment`` kWh (null when no hour has data), ``hours`` with data,
    ``estimated_hours``, and the ``last_hour`` with data (null when none)."""
    return await db.fetchrow(
        """select sum(total_kwh)::float8 as total, sum(measured_kwh)::float8 as measured,
                  sum(common_kwh)::float8 as common, sum(adjustment_kwh)::float8 as adjustment,
                  count(*) as hours, count(*) filter (where estimated) as estimated_hours,
                  max(hour) as last_hour
           from heat_allocation where flat_id = $1 and hour >= $2 and hour < $3""",
        flat_id,
        start,
        end,
    )


async def comparable_flats_heat_measured(
    db: Db, building_id: int, rooms: int, start: datetime, end: datetime
) -> float | None:
    """The mean heat in [start, end) of the building's flats with ``rooms`` rooms that have
    data in it; null when none has (a flat without data is not a flat that used 0 kWh)."""
    value = await db.fetchval(
        """select avg(kwh) from (
             select h.flat_id, sum(h.total_kwh) as kwh
             from flats f join heat_allocation h
               on h.flat_id = f.id and h.hour >= $3 and h.hour < $4
             where f.building_id = $1 and f.rooms = $2 group by h.flat_id) x""",
        building_id,
        rooms,
        start,
        end,
    )
    return float(value) if value is not None else None


# --- the monthly statement (EU EED annex VIIa), shared by the api's portal and notify ---


def _month_start(month: date, months: int, tz: str) -> datetime:
    """The local midnight starting the month ``months`` after ``month``, in UTC."""
    index = month.year * 12 + month.month - 1 + months
    first = date(index // 12, index % 12 + 1, 1)
    return datetime.combine(first, time(), ZoneInfo(tz)).astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True)
class StatementFigures:
    """A flat's heat in a month against the previous month, the same month last year and
    the mean of comparable flats (same building, same number of rooms), each over the same
    span: the first ``days_compared`` days of each month (the month's data may stop early),
    never a part against a whole. A figure without data in its span is None, never 0."""

    days_in_month: float
    days_compared: float
    kwh: float | None
    previous_month_kwh: float | None
    same_month_last_year_kwh: float | None
    comparable_user_kwh: float | None
    days_with_data: float
    previous_month_days_with_data: float
    same_month_last_year_days_with_data: float

    @property
    def partial(self) -> bool:
        return self.days_compared < self.days_in_month

    @staticmethod
    def change_pct(now: float | None, before: float | None) -> float | None:
        return 100.0 * (now - before) / before if now is not None and before else None


def _days(span: timedelta) -> float:
    return round(span.total_seconds() / 86400, 1)


async def flat_statement(
    db: Db, flat_id: int, building_id: int, rooms: int, month: date, tz: str, now: datetime
) -> StatementFigures:
    """The statement of the local ``month`` (its first day) for the flat; ``now`` ends the
    compared span of a month still running whose data has not started."""
    start, end = _month_start(month, 0, tz), _month_start(month, 1, tz)
    summary = await flat_heat_summary(db, flat_id, start, end)
    last = summary["last_hour"]
    stop = min(end, last + timedelta(hours=1) if last else now)
    length = max(stop - start, timedelta(0))

    async def same_days(months_back: int) -> tuple[float | None, float]:
        other = _month_start(month, -months_back, tz)
        other_end = min(_month_start(month, 1 - months_back, tz), other + length)
        found = await flat_heat_summary(db, flat_id, other, other_end)
        return found["total"], round(found["hours"] / 24, 1)

    previous, previous_days = await same_days(1)
    last_year, last_year_days = await same_days(12)
    comparable = (
        await comparable_flats_heat_measured(db, building_id, rooms, start, stop)
        if length
        else None
    )
    return StatementFigures(
        days_in_month=_days(end - start),
        days_compared=_days(length),
        kwh=summary["total"],
        previous_month_kwh=previous,
        same_month_last_year_kwh=last_year,
        comparable_user_kwh=comparable,
        days_with_data=round(summary["hours"] / 24, 1),
        previous_month_days_with_data=previous_days,
        same_month_last_year_days_with_data=last_year_days,
    )


SENSOR_FAULT = 65536  # heat_allocation.flags bit (balans_allocation.flags.Flag.SENSOR_FAULT)


async def flat_sensor_estimates(db: Db, flat_id: int, start: datetime, end: datetime) -> list[Any]:
    """The faulty-sensor estimates (a faulty_sensor alert followed by allocation) whose
    hours in [start, end) the flat's heat rests on: ``alert_id``, the pair's
    ``module_serial``, the faulty ``sensor`` (supply, return, pair), the fault's ``shape``,
    the ``method`` (cascade, history) and the span ``first_hour`` .. ``last_hour`` (null:
    open); dismissed alerts (false alarms, measured again) are left out."""
    return await db.fetch(
        """select alert_id, module_serial, sensor, shape, method, first_hour, last_hour
           from allocation_sensor_estimates
           where $1 = any(flat_ids) and not dismissed and first_hour < $3
             and (last_hour is null or last_hour >= $2)
           order by first_hour, alert_id""",
        flat_id,
        start,
        end,
    )


def estimate_of_hour(estimates: list[Any], hour: datetime, flags: int) -> Any | None:
    """The estimate an hour's heat came from: the first whose span holds it, for an hour
    flagged SENSOR_FAULT (None otherwise)."""
    if not flags & SENSOR_FAULT:
        return None
    return next(
        (
            e
            for e in estimates
            if e["first_hour"] <= hour and (e["last_hour"] is None or hour <= e["last_hour"])
        ),
        None,
    )


async def flat_heat_trail(db: Db, flat_id: int, start: datetime, end: datetime) -> list[Any]:
    """A flat's heat hour by hour in [start, end) with allocation's explanation trail:
    t, total, measured (own meters), common share and adjustment kWh (to the Wh),
    estimated, and what produced the measured part: method, volume_m3, delta_t_k,
    k_kwh_per_m3k (null where the layout has no such input), and the hour's ``flags``."""
    return await db.fetch(
        f"""select hour as t,
                  round(total_kwh::numeric, {HEAT_DECIMALS})::float8 as total_kwh,
                  round(measured_kwh::numeric, {HEAT_DECIMALS})::float8 as measured_kwh,
                  round(common_kwh::numeric, {HEAT_DECIMALS})::float8 as common_kwh,
                  round(adjustment_kwh::numeric, {HEAT_DECIMALS})::float8 as adjustment_kwh,
                  estimated, method, volume_m3, delta_t_k, k_kwh_per_m3k, flags
           from heat_allocation where flat_id = $1 and hour >= $2 and hour < $3
           order by hour""",
        flat_id,
        start,
        end,
    )
