"""The radio network: concentrators and modules with their last status (staff only)."""

from __future__ import annotations

from fastapi import APIRouter

from balans_api.deps import Pool, Staff
from balans_api.errors import ERROR_RESPONSES
from balans_api.models import ConcentratorPublic, ModuleStatusPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page

router = APIRouter(tags=["network"], responses=ERROR_RESPONSES)

_MODULES = """
select rm.id, rm.serial, c.serial as concentrator_serial, rm.subnet, rm.building_id,
       rm.flat_id, rm.riser_id, rm.floor, s.ts as last_seen, s.battery_mv, s.rssi_dbm,
       s.hops, s.parent_serial, s.tamper, s.error_bits
from radio_modules rm
join concentrators c on c.id = rm.concentrator_id
left join lateral (
    select ts, battery_mv, rssi_dbm, hops, parent_serial, tamper, error_bits
    from module_status ms where ms.module_serial = rm.serial order by ts desc limit 1
) s on true
"""

_CONCENTRATORS = """
select c.id, c.serial, c.building_id, c.model, c.installed_on,
       (select count(*) from radio_modules rm where rm.concentrator_id = c.id) as modules,
       (select max(ms.ts) from module_status ms
        join radio_modules rm on rm.serial = ms.module_serial
        where rm.concentrator_id = c.id and ms.ts > now() - interval '7 days') as last_seen
from concentrators c
"""


@router.get("/concentrators", response_model=Page[ConcentratorPublic])
async def list_concentrators(
    pool: Pool, _: Staff, building_id: int | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """Concentrators with their module count and when a module last reported."""
    rows, nxt = await fetch_page(
        pool, _CONCENTRATORS, Where().add("c.building_id = {}", building_id), cursor, limit, "c.id"
    )
    return Page(items=[ConcentratorPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/modules", response_model=Page[ModuleStatusPublic])
async def list_modules(
    pool: Pool,
    _: Staff,
    building_id: int | None = None,
    concentrator_serial: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 500,
) -> Page:
    """Radio modules with their latest status: battery, RSSI, hops, mesh parent, tamper."""
    where = (
        Where().add("rm.building_id = {}", building_id).add("c.serial = {}", concentrator_serial)
    )
    rows, nxt = await fetch_page(pool, _MODULES, where, cursor, limit, "rm.id")
    return Page(items=[ModuleStatusPublic(**r) for r in rows], next_cursor=nxt)
