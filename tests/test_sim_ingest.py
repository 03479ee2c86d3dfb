"""dmesh-sim through ingest: outages buffer and deliver exactly once; valves obey downlink."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from balans_db.secrets import KeyVault
from balans_devstack.nats_server import EmbeddedNats
from balans_ingest.testing import running_ingest, running_persister, wait_for_rows
from balans_protocol.commands import request_command
from balans_protocol.messages import CommandRequest
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.concentrator import SimConcentrator
from balans_sim.engine import CitySim
from balans_sim.world import concentrator_keys, write_city

START = datetime(2026, 1, 26, tzinfo=UTC)
READINGS = """select (select count(*) from pulse_readings) + (select count(*) from
    temperature_readings) + (select count(*) from module_status)"""


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream server of this module alone (its UPLOADS stream is consumed here)."""
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("simnats")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def _city(database_url: str, config: CityConfig) -> tuple[CitySim, dict[int, bytes]]:
    sim, _ = prepare(config, START, 48)
    conn = await asyncpg.connect(database_url)
    try:
        specs = [b.spec for b in sim.buildings]
        await write_city(conn, specs, KeyVault(), config.seed)
        return sim, await concentrator_keys(conn, specs, KeyVault())
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_outage_buffers_and_every_reading_lands_once(
    database_url: str, own_nats: str
) -> None:
    """Hours uploaded during a GPRS outage wait in the buffer, then reach PostgreSQL once."""
    sim, keys = await _city(
        database_url, CityConfig(seed=11, buildings=1, first_index=700, floors=(5, 5))
    )
    building = sim.buildings[0]
    generated = 0
    async with (
        running_ingest(own_nats, database_url) as pipe,
        running_persister(own_nats, database_url),
    ):
        c = SimConcentrator(
            building, keys[building.spec.concentrator_serial], "127.0.0.1", pipe.port
        )
        c.start()
        try:
            async with asyncio.timeout(30):
                await c.client.wait_connected()
            for outage in (False, True, False):
                if outage:
                    await c.client.close()  # uplink down
                chunk = sim.advance(6)[0]
                generated += chunk.reading_count()
                await c.send(chunk)
                if outage:
                    assert c.client.pending == 6
                    c.start()  # uplink back
                await c.client.drop_connection()  # and a flaky link on top
                async with asyncio.timeout(60):
                    await c.client.flush()
            assert c.client.stats.connects >= 3
        finally:
            await c.close()
        stored = await wait_for_rows(database_url, READINGS, generated, timeout_s=60)
    assert stored == generated


@pytest.mark.asyncio
async def test_closing_a_valve_stops_the_flats_water(database_url: str, own_nats: str) -> None:
    """A downlink valve_close reaches the simulated concentrator and the flat's cold-water
    register stops from the next hour."""
    sim, keys = await _city(
        database_url, CityConfig(seed=12, buildings=1, first_index=710, floors=(5, 5))
    )
    building = sim.buildings[0]
    valve = next(m for m in building.plan.meters if m.has_valve and m.utility == "cold_water")
    col = building.plan.meters.index(valve)
    async with running_ingest(own_nats, database_url) as pipe:
        c = SimConcentrator(
            building, keys[building.spec.concentrator_serial], "127.0.0.1", pipe.port
        )
        c.start()
        try:
            async with asyncio.timeout(30):
                await c.client.wait_connected()
            before = sim.advance(12)[0]
            c.current_hour = sim.next_hour
            reply = await request_command(
                pipe.nc,
                building.spec.concentrator_serial,
                CommandRequest(
                    command_id="t1",
                    module_serial=valve.module,
                    action="valve_close",
                    input=valve.input,
                ),
            )
        finally:
            await c.close()
    after = sim.advance(12)[0]
    assert reply.status == "done"
    assert before.pulse_count[-1, col] > before.pulse_count[0, col]
    assert after.pulse_count[-1, col] == before.pulse_count[-1, col]
    assert after.true_meter[:, col].sum() == 0
