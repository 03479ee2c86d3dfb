"""What balance publishes: its groups, their imbalance series with the learned bands,
and the alerts (tables in :mod:`balans_db.tables.balance`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from balans_db.queries import Db

GROUPS_WITH_MEMBERS = """
select g.id, g.name, g.utility, g.kind, g.building_id, g.parent_id, g.balance_meter_id,
       coalesce(array(select meter_id from balance_group_members m
                      where m.group_id = g.id order by meter_id), '{}') as member_meter_ids,
       g.flats_served, g.flats_metered, g.coverage_complete, g.loss_target_share
from balance_groups g
"""
"""A published select for paging: every balance group (``g``) with its member meters and
its metering coverage as balance last wrote it: ``flats_served``, ``flats_metered`` ("10
of 40 flats metered"), ``coverage_complete`` (False: too few metered, the group raises no
imbalance alerts and its imbalance is mostly unmetered use) and ``loss_target_share``
(the losses operators accept, a share of the balance meter); None before balance's first
analysis of the building."""


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
    night, coverage (of a day or month: the share of its hours present; below 1 it is
    partial, e.g. today, and its sums are no dip). The band is frozen over a fault's span
    (:func:`alert_spans`): it never absorbs a leak."""
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


OPEN_ALERT_COUNT = """
select count(*) as open_alerts from alerts where building_id = {building} and state = 'open'"""
"""A published select for composing (format it with the SQL of the parameter): how many
of the building's alerts are open (``open_alerts``)."""


BUILDING_DEGREE_DAYS = """
select f.hdd_to_date, f.hdd_month, f.as_of from forecasts f
where f.month = {month} and (
  (f.scope = 'meter' and f.scope_id in (select id from meters where building_id = {building}))
  or (f.scope = 'group'
      and f.scope_id in (select id from balance_groups where building_id = {building})))
order by f.as_of desc limit 1"""
"""A published select for composing (format it with the SQL of each parameter): the
heating degree-days balance forecast a building's month with (``hdd_to_date``,
``hdd_month``: measured so far plus the normal of the days to come, ``as_of``), from the
latest forecast of any of its meters or groups; no row when balance made none."""


async def groups_per_building(db: Db) -> dict[int, int]:
    """building id -> how many balance groups it has, at least 1 (a building balance has
    not analysed yet gets its groups then): what balance weighs a building it has not
    measured by (a weighted split of the event partitions, balans_core.costs)."""
    rows = await db.fetch(
        "select b.id, greatest(count(g.id), 1) as n from buildings b"
        " left join balance_groups g on g.building_id = b.id group by b.id"
    )
    return {r["id"]: r["n"] for r in rows}


async def newest_forecast_months(db: Db, building_ids: list[int]) -> dict[int, date]:
    """Per building, the newest month balance forecast any of its meters for (buildings
    without any forecast are left out). balance forecasts the month of the newest hour it
    analysed, so once a later month shows here, the earlier months' forecasts and
    degree-days are final."""
    rows = await db.fetch(
        """select b.id, (select max(f.month) from meters m join forecasts f
                         on f.scope = 'meter' and f.scope_id = m.id
                         where m.building_id = b.id) as newest
           from unnest($1::int[]) as b(id)""",
        building_ids,
    )
    return {r["id"]: r["newest"] for r in rows if r["newest"] is not None}


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
       coverage_complete = c.served = 0 or c.metered >= $2::float8 * c.served,
       loss_target_share = $3::float8
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


async def alert_spans(db: Db, group_id: int, start: datetime, end: datetime) -> list[Any]:
    """The group's alerts whose fault overlaps [start, end), to draw on its chart: id,
    kind, state, first_hour (the fault began), last_hour (last hour seen; the span runs
    on while ``state`` is open), began_before, reason_code; oldest first. A member meter's
    alert carries its group too."""
    return await db.fetch(
        """select id, kind, state, first_hour, last_hour, began_before, reason_code
           from alerts
           where group_id = $1 and first_hour < $3 and (state = 'open' or last_hour >= $2)
           order by first_hour, id""",
        group_id,
        start,
        end,
    )


BUILDING_HEAT_DAYS = """
select d.t, d.building_value, d.members_value, d.hours,
       d.hours * 3600 < extract(epoch from
           ((d.day + 1)::timestamp at time zone {tz})
           - (d.day::timestamp at time zone {tz})) as partial
from (select (s.period_start at time zone {tz})::date as day,
             date_trunc('day', s.period_start, {tz}) as t,
             sum(s.balance_value) as building_value,
             sum(s.subscribers_value) as members_value, count(*) as hours
      from imbalance_series s join balance_groups g on g.id = s.group_id
      where g.building_id = {building} and g.kind = 'building' and g.utility = 'heat'
        and s.resolution = 'hour' and s.period_start >= {since}
      group by 1, 2) d
order by d.t"""
"""A published select for composing: what :func:`building_heat_days` reads (format it
with the SQL of each parameter)."""


async def building_heat_days(db: Db, building_id: int, since: datetime, tz: str) -> list[Any]:
    """THE definition of "the flats measured against the building meter", per local day
    since ``since``: the building heat group's balance meter (``building_value``, kWh)
    against its members (``members_value``, kWh: flat heat meters, or the coolant the flat
    or riser flow meters passed priced at the building's own ΔT; the same numbers as the
    group's imbalance series), with ``hours`` present and ``partial`` (fewer hours than
    the local day has: today, or a gap). Pipe losses and common areas are in neither
    members' sum; balance's expected loss (:func:`imbalance_series`) holds them. Empty
    before balance analysed the building."""
    return await db.fetch(
        BUILDING_HEAT_DAYS.format(building="$1", since="$2", tz="$3"),
        building_id,
        since,
        tz,
    )


async def group_losses(db: Db, group_id: int, start: datetime, end: datetime) -> Any:
    """The group's losses over hours in [start, end) in absolute terms: ``balance_value``,
    ``members_value``, ``loss`` (their difference, in ``unit``), ``loss_share`` (of the
    group's balance meter), ``building_value`` and ``loss_share_of_building`` (of the
    building meter of the same utility, for entrance or riser groups), ``expected_loss``
    (what balance expects: pipes, common areas), ``loss_target_share`` and
    ``coverage_complete``; None without a series in the range."""
    return await db.fetchrow(
        """with own as (
             select min(s.unit) as unit, sum(s.balance_value) as balance_value,
                    sum(s.subscribers_value) as members_value,
                    sum(s.expected_loss) as expected_loss, count(*) as hours
             from imbalance_series s
             where s.group_id = $1 and s.resolution = 'hour'
               and s.period_start >= $2 and s.period_start < $3
           ), building as (
             select sum(s.balance_value) as building_value
             from balance_groups g
             join balance_groups b on b.building_id = g.building_id and b.kind = 'building'
                  and b.utility = g.utility
             join imbalance_series s on s.group_id = b.id
             where g.id = $1 and s.resolution = 'hour'
               and s.period_start >= $2 and s.period_start < $3
           )
           select o.unit, o.balance_value, o.members_value,
                  o.balance_value - o.members_value as loss,
                  (o.balance_value - o.members_value) / nullif(o.balance_value, 0) as loss_share,
                  b.building_value,
                  (o.balance_value - o.members_value) / nullif(b.building_value, 0)
                      as loss_share_of_building,
                  o.expected_loss, o.hours, g.loss_target_share, g.coverage_complete
           from own o cross join building b join balance_groups g on g.id = $1
           where o.hours > 0""",
        group_id,
        start,
        end,
    )
