"""What balance publishes: its groups, their imbalance series with the learned bands,
and the alerts (tables in :mod:`balans_db.tables.balance`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from balans_db.queries import Db

GROUPS_WITH_MEMBERS = """
select g.id, g.name, g.utility, g.kind, g.building_id, g.parent_id, g.balance_meter_id,
       coalesce(array(select meter_id from balance_group_members m
                      where m.group_id = g.id order by meter_id), '{}') as member_meter_ids
from balance_groups g
"""
"""A published select for paging: every balance group (``g``) with its member meters."""


async def group(db: Db, group_id: int) -> Any:
    """The group's building_id and balance_meter_id; None if there is no such group."""
    return await db.fetchrow(
        "select building_id, balance_meter_id from balance_groups where id = $1", group_id
    )


async def imbalance_series(
    db: Db, group_id: int, resolution: str, start: datetime, end: datetime
) -> list[Any]:
    """balance's series of the group at ``resolution`` ('hour', 'day', 'month') for
    periods starting in [start, end), oldest first: t, unit, balance_value, members_value
    (the subscribers' sum), expected_loss, imbalance, band_low, band_median, band_high,
    night, coverage."""
    return await db.fetch(
        """select period_start as t, unit, balance_value, subscribers_value as members_value,
                  expected_loss, imbalance, band_low, band_median, band_high, night, coverage
           from imbalance_series
           where group_id = $1 and resolution = $2 and period_start >= $3 and period_start < $4
           order by period_start""",
        group_id,
        resolution,
        start,
        end,
    )


ALERT_COLUMNS = """id, kind, state, building_id, group_id, meter_id, opened_at, updated_at,
closed_at, summary, evidence, acknowledged_by"""

ALERTS = f"select {ALERT_COLUMNS} from alerts"
"""A published select for paging: every alert with the columns the api shows."""


async def open_alert_count(db: Db, building_id: int) -> int:
    """How many of the building's alerts are open."""
    return int(
        await db.fetchval(
            "select count(*) from alerts where building_id = $1 and state = 'open'", building_id
        )
    )


async def building_degree_days(db: Db, building_id: int, month: date) -> Any:
    """The heating degree-days balance forecast a building's month with: ``hdd_to_date``,
    ``hdd_month`` (measured so far plus the normal of the days to come) and ``as_of``, from
    the latest forecast of any of its meters or groups; None when balance made none."""
    return await db.fetchrow(
        """select f.hdd_to_date, f.hdd_month, f.as_of from forecasts f
           where f.month = $2 and (
             (f.scope = 'meter' and f.scope_id in (select id from meters where building_id = $1))
             or (f.scope = 'group'
                 and f.scope_id in (select id from balance_groups where building_id = $1)))
           order by f.as_of desc limit 1""",
        building_id,
        month,
    )
