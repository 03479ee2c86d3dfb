"""The group-editing service API: request/reply on ``balans.balance.groups``.

The api gateway forwards operator edits here; every request is a
:class:`~balans_protocol.messages.GroupRequest` and gets a ``GroupReply``.
"""

from __future__ import annotations

import asyncpg
import structlog
from pydantic import ValidationError

from balans_balance import groups
from balans_balance.metrics import GROUP_REQUESTS, INVALID_MESSAGES
from balans_protocol.messages import (
    GroupCreate,
    GroupDelete,
    GroupGenerate,
    GroupGet,
    GroupList,
    GroupMembers,
    GroupRename,
    GroupReply,
    GroupRequest,
)

log = structlog.get_logger("balance")


async def _apply(conn: asyncpg.Connection, request: object) -> list[int]:
    """Run one request; return the ids of the groups to show in the reply."""
    match request:
        case GroupList(building_id=building_id, utility=utility):
            return await groups.list_group_ids(conn, building_id, utility)
        case GroupGet(group_id=group_id):
            return [group_id]
        case GroupCreate() as c:
            return [await groups.create_group(conn, c)]
        case GroupRename(group_id=group_id, name=name):
            await groups.rename_group(conn, group_id, name)
            return [group_id]
        case GroupMembers(op="add_members", group_id=group_id, meter_ids=meter_ids):
            await groups.add_members(conn, group_id, meter_ids)
            return [group_id]
        case GroupMembers(group_id=group_id, meter_ids=meter_ids):
            await groups.remove_members(conn, group_id, meter_ids)
            return [group_id]
        case GroupDelete(group_id=group_id):
            await groups.delete_group(conn, group_id)
            return []
        case GroupGenerate(building_id=building_id):
            return await groups.generate_building_groups(conn, building_id)
    raise TypeError(f"unhandled group request {request!r}")  # pragma: no cover


async def handle_group_request(pool: asyncpg.Pool, payload: bytes) -> GroupReply:
    """Validate, apply and answer one request; failures become ``ok=False`` replies."""
    try:
        request = GroupRequest.model_validate_json(payload).request
    except ValidationError as exc:
        INVALID_MESSAGES.labels("group_api").inc()
        GROUP_REQUESTS.labels("invalid", "rejected").inc()
        log.warning("invalid group request", error=str(exc))
        return GroupReply(ok=False, error=f"invalid request: {exc.errors()[0]['msg']}")
    try:
        async with pool.acquire() as conn:
            ids = await _apply(conn, request)
            shown = await groups.describe(conn, ids)
    except groups.GroupError as exc:
        GROUP_REQUESTS.labels(request.op, "refused").inc()
        log.info("group request refused", op=request.op, reason=str(exc))
        return GroupReply(ok=False, error=str(exc))
    GROUP_REQUESTS.labels(request.op, "ok").inc()
    return GroupReply(ok=True, groups=shown)
