"""Simulated J100G concentrators: real TCP clients of ingest (the reference client).

One per building. Each hour's readings become one UPLOAD batch; the client buffers it
until ingest ACKs, so a simulated GPRS outage (:meth:`SimConcentrator.outage`) only delays
delivery. Downlink valve commands change the flat's physics from the next hour on.
"""

from __future__ import annotations

import asyncio

import structlog

from balans_ingest.client import ConcentratorClient
from balans_protocol.frames import Command, CommandAction, CommandStatus
from balans_sim.engine import BuildingSim, Chunk
from balans_sim.metrics import BATCHES, COMMANDS, OUTAGES
from balans_sim.uplink import hour_records

log = structlog.get_logger("sim")


class SimConcentrator:
    def __init__(
        self, building: BuildingSim, key: bytes, host: str, port: int, *, boot: int = 1
    ) -> None:
        self.building = building
        self.client = ConcentratorClient(
            building.spec.concentrator_serial,
            key,
            host,
            port,
            boot=boot,
            on_command=self._on_command,
            reconnect_delay_s=0.2,
        )
        self.current_hour = building.start_hour

    def start(self) -> None:
        self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, chunk: Chunk) -> None:
        """Queue one batch per hour of the chunk (sent now if the uplink is up)."""
        for i in range(len(chunk.hours)):
            await self.client.upload(hour_records(chunk, i))
            BATCHES.inc()
        self.current_hour = int(chunk.hours[-1]) + 1

    async def outage(self, seconds: float) -> None:
        """The GPRS link is down for ``seconds``: batches queue, then are resent."""
        OUTAGES.inc()
        await self.client.close()
        await asyncio.sleep(seconds)
        self.client.start()

    async def _on_command(self, command: Command) -> tuple[CommandStatus, str]:
        COMMANDS.labels(action=command.action.name.lower()).inc()
        if command.action == CommandAction.PING:
            return CommandStatus.DONE, "pong"
        if command.action in (CommandAction.VALVE_CLOSE, CommandAction.VALVE_OPEN):
            closed = command.action == CommandAction.VALVE_CLOSE
            flat = self.building.set_valve(command.module, closed, self.current_hour)
            if flat is not None:
                log.info("valve", module=command.module, flat=flat, closed=closed)
                return CommandStatus.DONE, f"flat {flat} valve {'closed' if closed else 'open'}"
        return CommandStatus.FAILED, f"module {command.module} has no such actuator"
