"""Downlink: a NATS request reaches the concentrator's live connection as a COMMAND and
its COMMAND_RESULT comes back as the reply; offline and silent concentrators fail clearly."""

from __future__ import annotations

import asyncio
from typing import Any

from ingest_harness import running_ingest

from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.commands import request_command
from balans_protocol.frames import Command, CommandAction, CommandStatus
from balans_protocol.messages import CommandReply, CommandRequest


async def test_command_round_trip_offline_and_timeout(
    own_nats: EmbeddedNats, site: Any, neighbour: Any
) -> None:
    """A valve command is executed and answered; a disconnected concentrator gives
    'offline', a silent one 'timeout', a failing module 'failed'."""
    received: list[Command] = []

    async def valve(command: Command) -> tuple[CommandStatus, str]:
        received.append(command)
        if command.action is CommandAction.RELAY_ON:
            await asyncio.sleep(5)  # never answers in time
        if command.action is CommandAction.VALVE_OPEN:
            return CommandStatus.FAILED, "valve stuck"
        return CommandStatus.DONE, f"{command.action.name.lower()} on {command.module}"

    module = site.modules[0]
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        ingest.client(site.serial, site.key, on_command=valve) as client,
    ):
        async with asyncio.timeout(10):
            await client.wait_connected()

        def ask(action: str, concentrator: int = site.serial) -> Any:
            request = CommandRequest(
                command_id=action, module_serial=module, action=action, input=1, timeout_s=0.5
            )
            return request_command(ingest.nc, concentrator, request)

        done, failed, silent, offline = await asyncio.gather(
            ask("valve_close"), ask("valve_open"), ask("relay_on"), ask("ping", neighbour.serial)
        )
    assert done == CommandReply(
        command_id="valve_close", status="done", detail=f"valve_close on {module}"
    )
    assert (failed.status, failed.detail) == ("failed", "valve stuck")
    assert silent.status == "timeout"
    assert offline.status == "offline"
    assert str(neighbour.serial) in offline.detail
    assert sorted((c.action.name, c.module, c.input) for c in received) == [
        ("RELAY_ON", module, 1),
        ("VALVE_CLOSE", module, 1),
        ("VALVE_OPEN", module, 1),
    ]
