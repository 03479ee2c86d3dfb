"""dmesh-sim through ingest: outages buffer and deliver exactly once; restarts lose nothing;
valves obey downlink."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from ingest_harness import running_ingest, running_persister, wait_for_rows

from balans_db.secrets import KeyVault
from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.boot import next_boot
from balans_protocol.commands import request_command
from balans_protocol.messages import CommandRequest
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.concentrator import SimConcentrator
from balans_sim.engine import Chunk, CitySim
from balans_sim.runner import flush_all, run_concentrators
from balans_sim.world import concentrator_keys, write_city

START = datetime(2026, 1, 26, tzinfo=UTC)
# START stays fixed (the simulated weather is that of its season), so ingest and the
# persister are told to accept readings that old however long ago it becomes.
WINDOW = {"readings_horizon_days": (datetime.now(UTC) - START).days + 30}
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
async def test_scheduled_outages_buffer_and_every_reading_lands_once(
    database_url: str, own_nats: str
) -> None:
    """Seeded uplink outages hold batches in the client's buffer; afterwards every reading
    is in PostgreSQL exactly once."""
    sim, keys = await _city(
        database_url, CityConfig(seed=11, buildings=1, first_index=700, floors=(5, 5))
    )
    outages = sim.schedule_outages(24, per_week=30.0, mean_hours=3.0)
    assert outages
    assert {o.kind for o in outages} == {"uplink_outage"}
    building = sim.buildings[0]
    generated = 0
    held: list[int] = []
    async with (
        running_ingest(own_nats, database_url, **WINDOW) as pipe,
        running_persister(own_nats, database_url, **WINDOW),
    ):
        c = SimConcentrator(
            building, keys[building.spec.concentrator_serial], "127.0.0.1", pipe.port, boot=1
        )
        c.start()

        def note(chunks: list[Chunk]) -> None:
            nonlocal generated
            generated += chunks[0].reading_count()
            if c.offline:
                held.append(c.client.pending)

        try:
            async with asyncio.timeout(30):
                await c.client.wait_connected()
            await run_concentrators(
                sim,
                [c],
                24,
                hours_per_second=None,
                stop=asyncio.Event(),
                step_hours=2,
                on_chunk=note,
            )
            await c.client.drop_connection()  # and a flaky link on top
            await flush_all([c], timeout_s=60)
            assert c.client.stats.resent_batches >= max(held)
        finally:
            await c.close()
        stored = await wait_for_rows(database_url, READINGS, generated, timeout_s=60)
        conn = await asyncpg.connect(database_url)
        try:
            per_hour = await conn.fetch(
                "select ts, count(*) as n from module_status group by ts order by ts"
            )
        finally:
            await conn.close()
    assert held
    assert max(held) > 0
    assert stored == generated
    assert len(per_hour) == 24


@pytest.mark.asyncio
async def test_restarts_within_the_hour_store_every_reading(
    database_url: str, own_nats: str, tmp_path: Path
) -> None:
    """The simulator's concentrators started three times within one hour (each start a new
    boot counter from the state file, as the service takes it): every reading of every
    start is stored, none is taken for a resend of an earlier start's batch."""
    sim, keys = await _city(
        database_url, CityConfig(seed=13, buildings=1, first_index=720, floors=(5, 5))
    )
    building = sim.buildings[0]
    boot_file = tmp_path / "sim-boot-counter"
    before = await wait_for_rows(database_url, READINGS, 0)  # other tests' readings
    generated = 0
    boots: list[int] = []

    def note(chunks: list[Chunk]) -> None:
        nonlocal generated
        generated += chunks[0].reading_count()

    async with (
        running_ingest(own_nats, database_url) as pipe,
        running_persister(own_nats, database_url),
    ):
        for _ in range(3):
            c = SimConcentrator(
                building,
                keys[building.spec.concentrator_serial],
                "127.0.0.1",
                pipe.port,
                boot=next_boot(boot_file),
            )
            boots.append(c.client.boot)
            c.start()
            try:
                await run_concentrators(
                    sim, [c], 6, hours_per_second=None, stop=asyncio.Event(), on_chunk=note
                )
                await flush_all([c], timeout_s=60)
            finally:
                await c.close()
        stored = await wait_for_rows(database_url, READINGS, before + generated, timeout_s=60)
    assert boots == sorted(set(boots))
    assert generated > 0
    assert stored - before == generated


@pytest.mark.asyncio
async def test_closing_a_valve_stops_only_that_meter(database_url: str, own_nats: str) -> None:
    """A downlink valve_close on a flat's cold-water input stops that register from the next
    hour; the same flat's gas, on the same module, keeps flowing."""
    sim, keys = await _city(
        database_url, CityConfig(seed=12, buildings=1, first_index=710, floors=(5, 5))
    )
    building = sim.buildings[0]
    valve = next(m for m in building.plan.meters if m.has_valve and m.utility == "cold_water")
    gas = next(
        m
        for m in building.plan.meters
        if m.utility == "gas" and m.flat == valve.flat and m.module == valve.module
    )
    col, gas_col = building.plan.meters.index(valve), building.plan.meters.index(gas)
    async with running_ingest(own_nats, database_url, **WINDOW) as pipe:
        c = SimConcentrator(
            building, keys[building.spec.concentrator_serial], "127.0.0.1", pipe.port, boot=1
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
    assert after.true_meter[:, gas_col].sum() > 0


def test_valve_commands_act_on_the_input_they_name() -> None:
    """Closing gas then reopening it leaves cold water untouched; a valveless input refuses."""
    sim, _ = prepare(CityConfig(seed=12, buildings=1, first_index=710, floors=(5, 5)), START, 48)
    building = sim.buildings[0]
    gas = next(m for m in building.plan.meters if m.has_valve and m.utility == "gas")
    cold = next(m for m in building.plan.meters if m.utility == "cold_water" and m.flat == gas.flat)
    hot = next(m for m in building.plan.meters if m.utility == "hot_water" and m.flat == gas.flat)
    start = sim.next_hour
    assert building.set_valve(gas.module, gas.input, True, start) == gas
    assert building.set_valve(gas.module, gas.input, False, start + 6) == gas
    assert building.set_valve(hot.module, hot.input, True, start) is None
    q = sim.advance(12)[0].true_meter
    cols = {m.utility: building.plan.meters.index(m) for m in (gas, cold, hot)}
    assert q[:6, cols["gas"]].sum() == 0
    assert q[6:, cols["gas"]].sum() > 0
    assert (q[:, cols["cold_water"]] > 0).sum() >= 6
    assert q[:, cols["hot_water"]].sum() > 0
