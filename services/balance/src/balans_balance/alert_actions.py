"""Operators' alert actions: request/reply on ``balans.balance.alerts``.

The api forwards an operator's acknowledge, resolve or dismiss here, because balance alone
writes its alerts: a resolve (the fault was fixed) or a dismiss (a false alarm) closes the
alert and announces the closing, with how it was closed, through balance's outbox in the
same transaction, as every other transition is announced.
"""

from __future__ import annotations

from typing import Literal

import asyncpg
import structlog
from pydantic import ValidationError

from balans_balance.alerts import OUTBOX, RETURNING, alert_message
from balans_balance.metrics import ALERT_ACTIONS, ALERT_TRANSITIONS, INVALID_MESSAGES
from balans_core import outbox
from balans_protocol import subjects
from balans_protocol.messages import AlertAction, AlertActionReply

log = structlog.get_logger("balance")

_CLOSE = "state = 'closed', closed_at = coalesce(closed_at, now()), updated_at = now(), "
_SET = {
    "acknowledge": "acknowledged_by = $2, acknowledged_at = now(), updated_at = now()",
    "resolve": _CLOSE + "resolved_by = $2",
    "dismiss": _CLOSE + "resolved_by = $2",
}
_RESOLUTION: dict[str, Literal["resolved", "dismissed"]] = {
    "resolve": "resolved",
    "dismiss": "dismissed",
}


async def apply_action(conn: asyncpg.Connection, action: AlertAction) -> bool:
    """Record the action; announce a resolve or dismiss that closed an open alert. False: no
    such alert."""
    async with conn.transaction():
        was_open = await conn.fetchval(
            "select state = 'open' from alerts where id = $1 for update", action.alert_id
        )
        if was_open is None:
            return False
        row = await conn.fetchrow(
            f"""update alerts set {_SET[action.action]} where id = $1 {RETURNING}""",
            action.alert_id,
            action.actor,
        )
        if action.action in _RESOLUTION and was_open:
            message = alert_message(row, "closed", _RESOLUTION[action.action])
            await outbox.enqueue(conn, OUTBOX, subjects.alert(message.kind), message)
            ALERT_TRANSITIONS.labels(row["kind"], "closed").inc()
    return True


async def handle_alert_action(pool: asyncpg.Pool, payload: bytes) -> AlertActionReply:
    """Validate, apply and answer one action; a malformed request is a refused reply."""
    try:
        action = AlertAction.model_validate_json(payload)
    except ValidationError as exc:
        INVALID_MESSAGES.labels("alert_api").inc()
        ALERT_ACTIONS.labels("invalid", "rejected").inc()
        log.warning("invalid alert action", error=str(exc))
        return AlertActionReply(ok=False, error=f"invalid request: {exc.errors()[0]['msg']}")
    async with pool.acquire() as conn:
        found = await apply_action(conn, action)
    ALERT_ACTIONS.labels(action.action, "ok" if found else "not_found").inc()
    log.info("alert action", alert_id=action.alert_id, action=action.action, actor=action.actor)
    return AlertActionReply(ok=found, found=found, error="" if found else "no such alert")
