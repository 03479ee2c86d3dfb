"""The radio network: concentrators and modules with their last status (staff only)."""

from __future__ import annotations

from fastapi import APIRouter

from balans_api.deps import Pool, Staff
from balans_api.errors import ERROR_RESPONSES
from balans_api.models import ConcentratorPublic, ModuleStatusPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries.ingest import CONCENTRATORS_WITH_LAST_SEEN, MODULES_WITH_STATUS

router = APIRouter(tags=["network"], responses=ERROR_RESPONSES)


@router.get("/concentrators", response_model=Page[ConcentratorPublic])
async def list_concentrators(
    pool: Pool, _: Staff, building_id: int | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """Concentrators with their module count and when a module last reported."""
    rows, nxt = await fetch_page(
        pool,
        CONCENTRATORS_WITH_LAST_SEEN,
        Where().add("c.building_id = {}", building_id),
        cursor,
        limit,
        "c.id",
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
    rows, nxt = await fetch_page(pool, MODULES_WITH_STATUS, where, cursor, limit, "rm.id")
    return Page(items=[ModuleStatusPublic(**r) for r in rows], next_cursor=nxt)
