"""Alerts raised by balance: list (consumers see those on their own meters),
acknowledge and resolve (operators; audited)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError

from balans_api import audit
from balans_api.deps import Operator, Pool, Reader
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.models import AlertNote, AlertPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries import balance
from balans_protocol import subjects
from balans_protocol.messages import AlertAction, AlertActionReply

BALANCE_TIMEOUT_S = 10.0
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id.")]

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


async def _act(
    request: Request,
    pool: Pool,
    who: Operator,
    alert_id: int,
    action: Literal["acknowledge", "resolve"],
    note: str,
) -> AlertPublic:
    """Ask balance (which alone writes alerts) to record the action, then audit it."""
    nats = request.app.state.nats
    if nats is None or not nats.is_connected:
        raise ApiError(503, "balance cannot be reached (no NATS connection)")
    ask = AlertAction(alert_id=alert_id, action=action, actor=who.actor)
    try:
        msg = await nats.request(
            subjects.BALANCE_ALERTS_API, ask.model_dump_json().encode(), timeout=BALANCE_TIMEOUT_S
        )
        reply = AlertActionReply.model_validate_json(msg.data)
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise ApiError(503, "balance did not answer; try again", retry_after=5) from exc
    if not reply.found:
        raise not_found("alert")
    if not reply.ok:
        raise ApiError(502, f"balance refused the action: {reply.error}")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"{balance.ALERTS} where id = $1", alert_id)
        await audit.record(conn, who.actor, f"alert.{action}", f"alert:{alert_id}", note=note)
    return AlertPublic(**row)


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
async def acknowledge(
    alert_id: AlertId, body: AlertNote, request: Request, pool: Pool, who: Operator
) -> AlertPublic:
    """Mark an alert as seen by this operator (it stays open)."""
    return await _act(request, pool, who, alert_id, "acknowledge", body.note)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertPublic)
async def resolve(
    alert_id: AlertId, body: AlertNote, request: Request, pool: Pool, who: Operator
) -> AlertPublic:
    """Close an alert (e.g. after the meter was replaced); balance announces the closing."""
    return await _act(request, pool, who, alert_id, "resolve", body.note)
