"""Synthetic hourly series for a building: for the portal's tests, screenshots and the
benchmark, before allocation has computed real ones. Generated in SQL, in one statement
per table, so a year of a large building takes seconds."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from balans_db.queries import allocation

_HEAT = """
insert into heat_allocation (building_id, flat_id, hour, measured_kwh, common_kwh, total_kwh,
                             method)
select f.building_id, f.id, h,
       v, 0.15 * v, 1.15 * v, 'synthetic'
from flats f,
     generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', '1 hour') h,
     lateral (select (0.6 + (f.id % 7) * 0.1)
                     * (1.2 + cos(2 * pi() * extract(doy from h) / 365.0))
                     * (1 + 0.25 * sin(2 * pi() * extract(hour from h) / 24.0)) as v) x
where f.building_id = $1
on conflict do nothing
"""

_METERS = """
insert into meter_consumption (meter_id, hour, value, unit)
select m.id, h,
       (case when m.unit = 'kWh' then 1.0 else 0.01 end) * (1 + m.id % 3)
       * (1 + 0.5 * sin(2 * pi() * extract(hour from h) / 24.0)), m.unit
from meters m,
     generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', '1 hour') h
where m.building_id = $1 and m.role <> 'building'
on conflict do nothing
"""

# building meters see what the flats use (heat: what allocation shared out) plus ~3 %
_BUILDING_METERS = """
insert into meter_consumption (meter_id, hour, value, unit)
select b.id, x.hour, 1.03 * x.total, b.unit
from meters b,
     lateral (select hour, sum(total_kwh) as total from heat_allocation
              where b.utility = 'heat' and building_id = $1 and hour >= $2 and hour < $3
              group by hour
              union all
              select mc.hour, sum(mc.value) from meter_consumption mc
              join meters f on f.id = mc.meter_id
              where b.utility <> 'heat' and f.building_id = $1 and f.role = 'flat'
                and f.utility = b.utility and mc.hour >= $2 and mc.hour < $3
              group by mc.hour) x
where b.building_id = $1 and b.role = 'building'
on conflict do nothing
"""


# what allocation keeps per building-hour (Σ flat totals = the building meter)
_BUILDING_HOURS = """
insert into allocation_building_hours (building_id, hour, building_kwh, flats_measured_kwh,
                                       common_kwh, estimated_area_fraction)
select building_id, hour, sum(total_kwh), sum(measured_kwh), sum(common_kwh), 0
from heat_allocation where building_id = $1 and hour >= $2 and hour < $3
group by building_id, hour
on conflict do nothing
"""


async def fill_building(
    conn: asyncpg.Connection, building_id: int, start: datetime, end: datetime
) -> None:
    """Hourly heat per flat (and its days) and hourly consumption of every meter in
    [start, end)."""
    await conn.execute(_HEAT, building_id, start, end)
    await conn.execute(_BUILDING_HOURS, building_id, start, end)
    await conn.execute(_METERS, building_id, start, end)
    await conn.execute(_BUILDING_METERS, building_id, start, end)
    await allocation.refresh_days(conn, [(building_id, start, end - timedelta(hours=1))])
