"""The fleet questions put to PostgreSQL, each bounded to a recent time window.

Every query reads only recent partitions (``ts``/``hour`` > now() - window), so its cost
grows with the fleet, not with the history. ``now()`` is wall-clock UTC: the fleet
collector watches live data.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from pydantic import BaseModel


class Connection(Protocol):
    """The part of an asyncpg connection (or pool) the queries use."""

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...


class ConcentratorCounts(BaseModel):
    total: int
    silent: int


class BatteryCounts(BaseModel):
    reporting: int
    low: int


CONCENTRATORS_SQL = """
select count(*) as total,
       count(*) filter (where not exists (
           select 1 from radio_modules m join module_status s on s.module_serial = m.serial
           where m.concentrator_id = c.id and s.ts > now() - $1::interval
       )) as silent
from concentrators c
"""

BATTERY_SQL = """
select count(*) as reporting, count(*) filter (where battery_mv < $2) as low
from (
    select distinct on (module_serial) battery_mv
    from module_status
    where ts > now() - $1::interval
    order by module_serial, ts desc
) latest
"""

ESTIMATED_SQL = """
select m.utility, avg(case when c.estimated then 1.0 else 0.0 end)::float8 as share
from meter_consumption c join meters m on m.id = c.meter_id
where c.hour > now() - $1::interval
group by m.utility
"""


async def concentrator_counts(conn: Connection, silent_after: timedelta) -> ConcentratorCounts:
    """All concentrators, and those none of whose modules reported within ``silent_after``."""
    row = await conn.fetchrow(CONCENTRATORS_SQL, silent_after)
    return ConcentratorCounts(total=row["total"], silent=row["silent"])


async def battery_counts(conn: Connection, lookback: timedelta, low_mv: int) -> BatteryCounts:
    """Modules that reported within ``lookback``, and those whose latest voltage is low."""
    row = await conn.fetchrow(BATTERY_SQL, lookback, low_mv)
    return BatteryCounts(reporting=row["reporting"], low=row["low"])


async def estimated_shares(conn: Connection, window: timedelta) -> dict[str, float]:
    """utility -> share of estimated hourly consumption values within ``window``."""
    rows = await conn.fetch(ESTIMATED_SQL, window)
    return {row["utility"]: row["share"] for row in rows}
