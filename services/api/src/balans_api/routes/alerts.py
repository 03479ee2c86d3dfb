"""Alerts raised by balance: list (consumers see those on their own meters),
acknowledge and resolve (operators; audited)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from balans_api import audit
from balans_api.deps import Operator, Pool, Reader
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.models import AlertAction, AlertPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries import balance

router = APIRouter(tags=["alerts"], responses=ERROR_RESPONSES)


@router.get("/alerts", response_model=Page[AlertPublic])
async def list_alerts(
    pool: Pool,
    who: Reader,
    state: Literal["open", "closed"] | None = None,
    kind: str | None = None,
    building_id: int | None = None,
    meter_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """The alert queue, oldest first; filter by state, kind, building or meter."""
    where = (
        Where()
        .add("state = {}", state)
        .add("kind = {}", kind)
        .add("building_id = {}", building_id)
        .add("meter_id = {}", meter_id)
        .add("meter_id in (select id from meters where flat_id = any({}))", who.flat_filter())
    )
    rows, nxt = await fetch_page(pool, balance.ALERTS, where, cursor, limit)
    return Page(items=[AlertPublic(**r) for r in rows], next_cursor=nxt)


async def _act(pool: Pool, who: Operator, alert_id: int, action: str, note: str) -> AlertPublic:
    async with pool.acquire() as conn, conn.transaction():
        row = await balance.operator_action(conn, alert_id, action, who.actor)
        if row is None:
            raise not_found("alert")
        await audit.record(conn, who.actor, f"alert.{action}", f"alert:{alert_id}", note=note)
    return AlertPublic(**row)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
async def acknowledge(alert_id: int, body: AlertAction, pool: Pool, who: Operator) -> AlertPublic:
    """Mark an alert as seen by this operator (it stays open)."""
    return await _act(pool, who, alert_id, "acknowledge", body.note)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertPublic)
async def resolve(alert_id: int, body: AlertAction, pool: Pool, who: Operator) -> AlertPublic:
    """Close an alert (e.g. after the meter was replaced)."""
    return await _act(pool, who, alert_id, "resolve", body.note)
