"""Simulated J100G concentrators: real TCP clients of ingest (the reference client).

One per building. Each hour's readings become one UPLOAD batch; the client buffers it
until ingest ACKs, so a simulated GPRS outage (:mod:`balans_sim.outages`) only delays
delivery. Downlink valve commands shut the one meter they name from the next hour on.
Every start of the simulator is a new boot of its concentrators: ``boot`` comes from
:func:`balans_protocol.boot.next_boot` (``BALANS_SIM_BOOT_FILE``), so a restart never
reuses the message ids of an earlier one.
"""

from __future__ import annotations

import structlog

from balans_protocol.client import ConcentratorClient
from balans_protocol.frames import Command, CommandAction, CommandStatus
from balans_sim.engine import BuildingSim, Chunk
from balans_sim.metrics import BATCHES, COMMANDS, OUTAGES
from balans_sim.outages import uplink_down
from balans_sim.uplink import hour_records

log = structlog.get_logger("sim")


class SimConcentrator:
    def __init__(
        self, building: BuildingSim, key: bytes, host: str, port: int, *, boot: int
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
        self.offline = False  # in a scheduled outage

    def start(self) -> None:
        self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, chunk: Chunk) -> None:
        """Queue one batch per hour of the chunk: sent at once unless a scheduled uplink
        outage holds it in the client's buffer until the link is back."""
        for i in range(len(chunk.hours)):
            await self._set_uplink(down=uplink_down(self.building.outages, int(chunk.hours[i]) + 1))
            await self.client.upload(hour_records(chunk, i))
            BATCHES.inc()
        self.current_hour = int(chunk.hours[-1]) + 1

    async def restore_uplink(self) -> None:
        """End an outage now (the run stops before its scheduled end)."""
        await self._set_uplink(down=False)

    async def _set_uplink(self, *, down: bool) -> None:
        if down == self.offline:
            return
        self.offline = down
        if down:
            OUTAGES.inc()
            log.info("uplink down", concentrator=self.building.spec.concentrator_serial)
            await self.client.close()
        else:
            log.info("uplink back", concentrator=self.building.spec.concentrator_serial)
            self.client.start()

    async def _on_command(self, command: Command) -> tuple[CommandStatus, str]:
        COMMANDS.labels(action=command.action.name.lower()).inc()
        if command.action == CommandAction.PING:
            return CommandStatus.DONE, "pong"
        if command.action in (CommandAction.VALVE_CLOSE, CommandAction.VALVE_OPEN):
            closed = command.action == CommandAction.VALVE_CLOSE
            meter = self.building.set_valve(
                command.module, command.input, closed, self.current_hour
            )
            if meter is not None:
                state = "closed" if closed else "open"
                log.info("valve", meter=meter.serial, flat=meter.flat, closed=closed)
                return CommandStatus.DONE, f"flat {meter.flat} {meter.utility} valve {state}"
        return CommandStatus.FAILED, (
            f"module {command.module} input {command.input} has no such actuator"
        )
