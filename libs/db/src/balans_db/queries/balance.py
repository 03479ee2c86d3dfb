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


ALERT_SUMMARIES = """select * from (
select a.id, a.kind, a.state, a.severity, a.building_id, b.name as building_name,
       a.group_id, g.name as group_name, a.meter_id, m.serial as meter_serial,
       coalesce(m.has_valve, false) as meter_has_valve, a.module_serial,
       coalesce(m.flat_id, rm.flat_id) as flat_id, f.number as flat_number,
       coalesce(m.riser_id, rm.riser_id) as riser_id, r.number as riser_number,
       a.first_hour as began_at, a.began_before, a.last_hour,
       coalesce(a.detected_hour, (a.evidence->>'detected_hour')::timestamptz) as detected_at,
       a.opened_at, a.updated_at, a.closed_at, a.summary, a.reason_code, a.reason_params,
       a.evidence->>'rule' as rule, a.acknowledged_by, a.acknowledged_at, a.resolved_by
from alerts a
left join buildings b on b.id = a.building_id
left join balance_groups g on g.id = a.group_id
left join meters m on m.id = a.meter_id
left join radio_modules rm on rm.serial = a.module_serial
left join flats f on f.id = coalesce(m.flat_id, rm.flat_id)
left join risers r on r.id = coalesce(m.riser_id, rm.riser_id)) a"""
"""A published select for paging and filtering (``a``): each alert as the operator's queue
shows it, without its evidence: where (building, group, flat or riser, meter or module),
when the fault began (``began_at``, the detector's first hour; ``began_before``: older
than the data read), was detected and was opened, the one reason that fired
(``reason_code``, ``reason_params``) and balance's rule in its words."""


async def alert_evidence(db: Db, alert_id: int) -> Any:
    """The alert's evidence as balance wrote it (a dict), None if there is no such alert."""
    return await db.fetchval("select evidence from alerts where id = $1", alert_id)


_GROUP_COVERAGE = """
with metered as (
  select gm.group_id, m.flat_id from balance_group_members gm
  join meters m on m.id = gm.meter_id
  where m.role = 'flat' and m.flat_id is not null
    and not exists (select 1 from channels c where c.meter_id = m.id and c.valid_to is not null)
  union
  select gm.group_id, rad.flat_id from balance_group_members gm
  join meters m on m.id = gm.meter_id join radiators rad on rad.riser_id = m.riser_id
  where m.role = 'riser'
), served as (
  select g.id as group_id, f.id as flat_id from balance_groups g
  join flats f on f.building_id = g.building_id
  where g.kind = 'building' and g.building_id = $1
  union
  select g.id, f.id from balance_groups g
  join balance_group_members gm on gm.group_id = g.id join meters m on m.id = gm.meter_id
  left join flats mf on mf.id = m.flat_id left join risers r on r.id = m.riser_id
  join flats f on f.entrance_id = coalesce(mf.entrance_id, r.entrance_id)
  where g.kind = 'entrance' and g.building_id = $1
  union
  select g.id, rad.flat_id from balance_groups g
  join meters bm on bm.id = g.balance_meter_id join radiators rad on rad.riser_id = bm.riser_id
  where g.kind = 'riser' and g.building_id = $1
  union
  select me.group_id, me.flat_id from metered me join balance_groups g on g.id = me.group_id
  where g.kind in ('branch', 'custom') and g.building_id = $1
), counted as (
  select g.id, count(distinct s.flat_id) as served,
         count(distinct s.flat_id) filter (
           where exists (select 1 from metered me
                         where me.group_id = g.id and me.flat_id = s.flat_id)) as metered
  from balance_groups g left join served s on s.group_id = g.id
  where g.building_id = $1 group by g.id
)
update balance_groups g set flats_served = c.served, flats_metered = c.metered,
       coverage_complete = c.served = 0 or c.metered >= $2 * c.served,
       loss_target_share = $3
from counted c where c.id = g.id
returning g.id, g.coverage_complete
"""


async def store_group_coverage(
    db: Db, building_id: int, min_coverage: float, loss_target_share: float
) -> list[Any]:
    """balance's write of its groups' metering coverage (docs/balance.md, *Coverage*):
    ``flats_served`` (a building group: the building's flats; an entrance group: the
    flats of its members' entrances; a riser group: the flats with a radiator on its
    balance meter's riser; branch and custom groups: the flats their members meter),
    ``flats_metered`` (of those, the flats with a member meter in service or a radiator
    on a member riser meter's riser), ``coverage_complete`` (at least ``min_coverage`` of
    them metered, or no flats served) and the ``loss_target_share``; returns (id,
    coverage_complete) of each of the building's groups."""
    return await db.fetch(_GROUP_COVERAGE, building_id, min_coverage, loss_target_share)
