"""Carry a command to ingest (the protocol's ``request_command``), record how it ended and
announce it (``CommandFinished`` through the api's outbox: notify tells the resident of a
closed valve)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog
from nats.aio.client import Client as Nats
from pydantic import ValidationError

from balans_api.metrics import COMMANDS
from balans_api.provisioning import OUTBOX
from balans_core.outbox import enqueue
from balans_protocol import subjects
from balans_protocol.commands import request_command
from balans_protocol.messages import CommandFinished, CommandReply, CommandRequest

log = structlog.get_logger("api")


async def _exchange(nats: Nats | None, concentrator: int, request: CommandRequest) -> CommandReply:
    """The protocol's request/reply; a reply that is not a CommandReply ends as failed."""
    if nats is None or not nats.is_connected:
        return CommandReply(command_id=request.command_id, status="failed", detail="no NATS")
    try:
        return await request_command(nats, concentrator, request)
    except ValidationError as exc:
        log.error("malformed command reply", command_id=request.command_id, error=str(exc))
        return CommandReply(
            command_id=request.command_id, status="failed", detail="malformed reply"
        )


async def execute(
    pool: asyncpg.Pool,
    nats: Nats | None,
    concentrator: int,
    request: CommandRequest,
    announced: Callable[[], None] = lambda: None,
) -> CommandReply:
    """Send, wait for the reply, store the outcome on the ``commands`` row and, in the same
    transaction, its ``CommandFinished`` announcement; ``announced`` wakes the relay."""
    reply = await _exchange(nats, concentrator, request)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            """update commands set status = $2, detail = $3, updated_at = now() where id = $1
               returning meter_id, action, created_at, updated_at""",
            request.command_id,
            reply.status,
            reply.detail,
        )
        if row is not None:
            finished = CommandFinished(
                command_id=request.command_id,
                meter_id=row["meter_id"],
                action=row["action"],
                status=reply.status,
                requested_at=row["created_at"],
                finished_at=row["updated_at"],
            )
            await enqueue(
                conn,
                OUTBOX,
                subjects.command_finished(row["meter_id"]),
                finished,
                msg_id=f"command-{request.command_id}",
            )
    announced()
    COMMANDS.labels(status=reply.status).inc()
    log.info("command finished", command_id=request.command_id, status=reply.status)
    return reply


class Dispatcher:
    """Runs commands in the background; the HTTP request returns at once (202)."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[CommandReply]] = set()

    def start(
        self,
        pool: asyncpg.Pool,
        nats: Nats | None,
        concentrator: int,
        request: CommandRequest,
        announced: Callable[[], None] = lambda: None,
    ) -> None:
        task = asyncio.create_task(execute(pool, nats, concentrator, request, announced))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[CommandReply]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            COMMANDS.labels(status="error").inc()
            log.error("command task failed", error=repr(task.exception()))

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
