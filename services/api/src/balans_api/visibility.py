"""Checks that one object is visible to the principal (404, not 403: a consumer must
not learn which ids exist), and the part of a time range a consumer may see: the days
their account holds the flat (a tenant before or after them sees their own days only)."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import asyncpg

from balans_api.errors import not_found
from balans_api.principal import Principal
from balans_api.timerange import TimeRange

VALVE_STATE = """case when m.has_valve then coalesce(
  (select case k.action when 'valve_close' then 'closed' else 'open' end from commands k
   where k.meter_id = m.id and k.status = 'done' and k.action in ('valve_close', 'valve_open')
   order by k.created_at desc limit 1), 'open') end"""
"""SQL of a meter ``m``'s valve: as the last valve command done left it (open until one
closed it), null without a valve."""

METER_COLUMNS = f"""m.id, m.serial, m.utility, m.kind, m.role, m.building_id, m.flat_id,
m.riser_id, m.pulse_weight, m.unit, m.pipe, m.has_valve, c.module_serial, c.input,
{VALVE_STATE} as valve_state"""
METER_FROM = "meters m left join channels c on c.meter_id = m.id"

# a flat that no account holds today (its site's local day): a column of ``flats``
VACANT = """not exists (
  select 1 from accounts a, buildings b join sites s on s.id = b.site_id
  where a.flat_id = flats.id and b.id = flats.building_id
    and (a.opened_on is null or a.opened_on <= (now() at time zone s.timezone)::date)
    and (a.closed_on is null or a.closed_on > (now() at time zone s.timezone)::date)
) as vacant"""


def check_building(principal: Principal, building_id: int) -> None:
    allowed = principal.building_filter()
    if allowed is not None and building_id not in allowed:
        raise not_found("building")


def check_flat(principal: Principal, flat_id: int) -> None:
    allowed = principal.flat_filter()
    if allowed is not None and flat_id not in allowed:
        raise not_found("flat")


async def visible_meter(pool: asyncpg.Pool, principal: Principal, meter_id: int) -> asyncpg.Record:
    """The meter (with its channel) if the principal may see it."""
    row = await pool.fetchrow(f"select {METER_COLUMNS} from {METER_FROM} where m.id = $1", meter_id)
    if row is None:
        raise not_found("meter")
    allowed = principal.flat_filter()
    if allowed is not None and row["flat_id"] not in allowed:
        raise not_found("meter")
    return row


def held_window(principal: Principal, window: TimeRange, tz: str) -> TimeRange:
    """``window`` cut to the days the consumer's account holds its flat ([opened_on,
    closed_on) in the site's local days); staff see the whole window. Empty (start == end)
    when the two do not meet."""
    if not principal.is_consumer:
        return window
    zone = ZoneInfo(tz)
    start, end = window.start, window.end
    if principal.held_from is not None:
        start = max(start, datetime.combine(principal.held_from, time(), zone))
    if principal.held_until is not None:
        end = min(end, datetime.combine(principal.held_until, time(), zone))
    return TimeRange(start, max(start, end))
