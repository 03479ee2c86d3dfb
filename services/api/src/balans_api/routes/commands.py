"""Commands to valves and relays (operators): request, then follow the status."""

from __future__ import annotations

import uuid
from functools import partial

from fastapi import APIRouter, Request, status

from balans_api import audit
from balans_api.deps import Operator, Pool, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.models import CommandCreate, CommandPublic
from balans_api.paging import (
    Cursor,
    Limit,
    Page,
    Where,
    decode_key,
    encode_cursor,
    key_time,
    time_key,
)
from balans_api.provisioning import wake_relay
from balans_protocol.messages import CommandRequest

router = APIRouter(tags=["commands"], responses=ERROR_RESPONSES)

_COLUMNS = """id, meter_id, module_serial, concentrator_serial, action, status, detail,
requested_by, created_at, updated_at"""

_TARGET = """
select m.has_valve, m.utility, c.module_serial, c.input, k.serial as concentrator_serial
from meters m
join channels c on c.meter_id = m.id
join radio_modules rm on rm.serial = c.module_serial
join concentrators k on k.id = rm.concentrator_id
where m.id = $1
"""


def _check_action(action: str, has_valve: bool, utility: str) -> None:
    if action.startswith("valve_") and not has_valve:
        raise ApiError(409, "this meter has no valve")
    if action.startswith("relay_") and utility != "electricity":
        raise ApiError(409, "relays switch electricity meters only")


@router.post(
    "/meters/{meter_id}/commands",
    response_model=CommandPublic,
    status_code=status.HTTP_202_ACCEPTED,
)
async def send_command(
    meter_id: int, body: CommandCreate, request: Request, pool: Pool, who: Operator
) -> CommandPublic:
    """Close or open a meter's valve, switch a relay, or ping its module.

    Answers 202 with status ``pending``; poll ``GET /commands/{id}`` for ``done``,
    ``failed``, ``offline`` or ``timeout``. Every command is in the audit log."""
    target = await pool.fetchrow(_TARGET, meter_id)
    if target is None:
        raise not_found("meter (with a radio channel)")
    _check_action(body.action, target["has_valve"], target["utility"])
    settings = request.app.state.settings
    command = CommandRequest(
        command_id=uuid.uuid4().hex,
        module_serial=target["module_serial"],
        action=body.action,
        input=target["input"],
        timeout_s=settings.command_timeout_s,
    )
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""insert into commands (id, meter_id, module_serial, concentrator_serial, action,
                                      requested_by)
                values ($1, $2, $3, $4, $5, $6) returning {_COLUMNS}""",
            command.command_id,
            meter_id,
            command.module_serial,
            target["concentrator_serial"],
            body.action,
            who.actor,
        )
        await audit.record(
            conn,
            who.actor,
            f"command.{body.action}",
            f"meter:{meter_id}",
            command_id=command.command_id,
            reason=body.reason,
        )
    request.app.state.dispatcher.start(
        pool,
        request.app.state.nats,
        target["concentrator_serial"],
        command,
        partial(wake_relay, request.app),
    )
    return CommandPublic(**row)


@router.get("/commands/{command_id}", response_model=CommandPublic)
async def get_command(command_id: str, pool: Pool, _: Staff) -> CommandPublic:
    """A command and its status."""
    row = await pool.fetchrow(f"select {_COLUMNS} from commands where id = $1", command_id)
    if row is None:
        raise not_found("command")
    return CommandPublic(**row)


@router.get("/commands", response_model=Page[CommandPublic])
async def list_commands(
    pool: Pool, _: Staff, meter_id: int | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page[CommandPublic]:
    """The latest commands, newest first; filter by meter."""
    where = Where().add("meter_id = {}", meter_id)
    if cursor is not None:
        at, command_id = decode_key(cursor, 2)
        where.conditions.append(
            f"(created_at, id) < ({where.param(key_time(at))}, {where.param(command_id)})"
        )
    rows = await pool.fetch(
        f"select {_COLUMNS} from commands{where.sql()} order by created_at desc, id desc "
        f"limit {where.param(limit + 1)}",
        *where.params,
    )
    nxt = None
    if len(rows) > limit:
        rows, last = rows[:limit], rows[limit - 1]
        nxt = encode_cursor(time_key(last["created_at"]), last["id"])
    return Page(items=[CommandPublic(**r) for r in rows], next_cursor=nxt)
