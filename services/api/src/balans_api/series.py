"""SQL for time series: meter consumption and per-flat heat, bucketed in local time.

Hours are stored in UTC; days and months are cut in the site's time zone (the
building's local calendar is what people read)."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from balans_api.models import ConsumptionPoint
from balans_api.timerange import Resolution, TimeRange

_METER_SERIES = """
select date_trunc($4, hour, $5) as t, sum(value) as value, bool_or(estimated) as estimated
from meter_consumption
where meter_id = $1 and hour >= $2 and hour < $3
group by 1 order by 1
"""

_FLAT_HEAT_SERIES = """
select date_trunc($4, hour, $5) as t, sum(total_kwh) as value, bool_or(estimated) as estimated
from heat_allocation
where flat_id = $1 and hour >= $2 and hour < $3
group by 1 order by 1
"""

# mean over the building's flats of each bucket's flat total
_BUILDING_HEAT_AVERAGE = """
select t, avg(value) as value, false as estimated from (
    select flat_id, date_trunc($4, hour, $5) as t, sum(total_kwh) as value
    from heat_allocation
    where building_id = $1 and hour >= $2 and hour < $3
    group by 1, 2
) per_flat group by t order by t
"""

_BUILDING_METER_AVERAGE = """
select t, avg(value) as value, false as estimated from (
    select mc.meter_id, date_trunc($4, mc.hour, $5) as t, sum(mc.value) as value
    from meter_consumption mc
    join meters m on m.id = mc.meter_id
    where m.building_id = $1 and m.role = 'flat' and m.utility = $6
      and mc.hour >= $2 and mc.hour < $3
    group by 1, 2
) per_meter group by t order by t
"""


def _points(rows: list[asyncpg.Record]) -> list[ConsumptionPoint]:
    return [ConsumptionPoint(t=r["t"], value=r["value"], estimated=r["estimated"]) for r in rows]


async def site_timezone(pool: asyncpg.Pool, building_id: int) -> str:
    tz = await pool.fetchval(
        "select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1",
        building_id,
    )
    return str(tz or "UTC")


async def meter_series(
    pool: asyncpg.Pool, meter_id: int, span: TimeRange, resolution: Resolution, tz: str
) -> list[ConsumptionPoint]:
    rows = await pool.fetch(_METER_SERIES, meter_id, span.start, span.end, resolution, tz)
    return _points(rows)


async def flat_heat_series(
    pool: asyncpg.Pool, flat_id: int, span: TimeRange, resolution: Resolution, tz: str
) -> list[ConsumptionPoint]:
    rows = await pool.fetch(_FLAT_HEAT_SERIES, flat_id, span.start, span.end, resolution, tz)
    return _points(rows)


async def building_average(
    pool: asyncpg.Pool,
    building_id: int,
    utility: str,
    span: TimeRange,
    resolution: Resolution,
    tz: str,
) -> list[ConsumptionPoint]:
    """The average flat's consumption per bucket (heat from the allocation)."""
    if utility == "heat":
        rows = await pool.fetch(
            _BUILDING_HEAT_AVERAGE, building_id, span.start, span.end, resolution, tz
        )
    else:
        rows = await pool.fetch(
            _BUILDING_METER_AVERAGE, building_id, span.start, span.end, resolution, tz, utility
        )
    return _points(rows)


def total(points: list[ConsumptionPoint]) -> float:
    return float(sum(p.value for p in points))


def iso(value: datetime) -> str:
    return value.isoformat()
