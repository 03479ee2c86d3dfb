"""Checks that one object is visible to the principal (404, not 403: a consumer must
not learn which ids exist)."""

from __future__ import annotations

import asyncpg

from balans_api.errors import not_found
from balans_api.principal import Principal

METER_COLUMNS = """m.id, m.serial, m.utility, m.kind, m.role, m.building_id, m.flat_id,
m.riser_id, m.pulse_weight, m.unit, m.pipe, m.has_valve, c.module_serial, c.input"""
METER_FROM = "meters m left join channels c on c.meter_id = m.id"


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
