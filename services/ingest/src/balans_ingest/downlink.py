"""Downlink: NATS requests on ``balans.cmd.<serial>`` become COMMAND frames.

Each live session subscribes to its own concentrator's subject, so with several ingest
instances the request reaches whichever one holds the connection; when none does, NATS
answers "no responders" and :func:`balans_protocol.commands.request_command` turns that
into ``status="offline"``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from balans_ingest.metrics import COMMANDS
from balans_protocol import subjects
from balans_protocol.frames import Command, CommandAction, CommandResult, CommandStatus
from balans_protocol.messages import CommandReply, CommandRequest

log = structlog.get_logger("ingest")

SendCommand = Callable[[Command], int]  # writes the COMMAND frame, returns its sequence


class DisconnectedError(Exception):
    """The session closed while a command waited for its result."""


class CommandChannel:
    """The downlink of one session: request in, COMMAND out, COMMAND_RESULT back."""

    def __init__(self, nc: Client, serial: int, send: SendCommand) -> None:
        self._nc = nc
        self._serial = serial
        self._send = send
        self._waiting: dict[int, asyncio.Future[CommandResult]] = {}
        self._subscription: Subscription | None = None

    async def open(self) -> None:
        """Subscribe, and wait until the NATS server has the subscription: once the session
        is confirmed to the concentrator, a command must find it."""
        self._subscription = await self._nc.subscribe(
            subjects.command(self._serial), cb=self._on_request
        )
        await self._nc.flush()

    async def close(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()
            self._subscription = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(DisconnectedError())
        self._waiting.clear()

    def resolve(self, result: CommandResult) -> bool:
        """Hand a COMMAND_RESULT to the request waiting for it; False if none is."""
        future = self._waiting.pop(result.command_seq, None)
        if future is None or future.done():
            return False
        future.set_result(result)
        return True

    async def _on_request(self, msg: Msg) -> None:
        try:
            request = CommandRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            COMMANDS.labels("invalid").inc()
            log.warning("invalid command request", serial=self._serial, error=str(exc))
            await msg.respond(
                CommandReply(command_id="", status="failed", detail="invalid request")
                .model_dump_json()
                .encode()
            )
            return
        reply = await self._execute(request)
        COMMANDS.labels(reply.status).inc()
        await msg.respond(reply.model_dump_json().encode())

    async def _execute(self, request: CommandRequest) -> CommandReply:
        command = Command(
            request.module_serial, CommandAction[request.action.upper()], request.input
        )
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        seq = self._send(command)
        self._waiting[seq] = future
        try:
            async with asyncio.timeout(request.timeout_s):
                result = await future
        except TimeoutError:
            self._waiting.pop(seq, None)
            return CommandReply(
                command_id=request.command_id,
                status="timeout",
                detail=f"no COMMAND_RESULT within {request.timeout_s} s",
            )
        except DisconnectedError:
            return CommandReply(
                command_id=request.command_id,
                status="offline",
                detail="the concentrator disconnected before answering",
            )
        status = "done" if result.status is CommandStatus.DONE else "failed"
        return CommandReply(command_id=request.command_id, status=status, detail=result.detail)
