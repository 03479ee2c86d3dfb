"""dmesh-sim into PostgreSQL: the fast path, idempotence, and the service's backfill."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import pytest

from balans_core.service import ServiceContext
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_sim.__main__ import serve
from balans_sim.api import simulate_into_database
from balans_sim.city import CityConfig
from balans_sim.faults import read_ground_truth
from balans_sim.settings import SimSettings

START = datetime(2026, 1, 5, tzinfo=UTC)


@pytest.mark.asyncio
async def test_weeks_of_a_city_land_once(database_url: str, tmp_path: Path) -> None:
    """Every delivered reading is stored once; a second identical run inserts nothing."""
    config = CityConfig(seed=4, buildings=2, first_index=400)
    truth = tmp_path / "truth.jsonl"
    first = await simulate_into_database(
        database_url, config, start=START, weeks=1, faults_per_week=2.0, ground_truth=truth
    )
    assert first.readings > 0
    again = await simulate_into_database(database_url, config, start=START, weeks=1)
    assert again.readings == 0
    assert read_ground_truth(truth) == first.faults
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetchval(
            """select (select count(*) from pulse_readings) + (select count(*) from
               temperature_readings) + (select count(*) from module_status)
               + (select count(*) from module_events)"""
        )
        hours = await conn.fetchval("select count(distinct ts) from pulse_readings")
        decreasing = await conn.fetchval(
            """select count(*) from (select count - lag(count) over (partition by module_serial,
               input order by ts) d from pulse_readings) x where d < 0"""
        )
        buildings = await conn.fetchval("select count(*) from buildings where code like 'sim-4-%'")
    finally:
        await conn.close()
    assert stored == first.readings
    assert hours == 168
    assert decreasing == 0  # cumulative registers
    assert buildings == 2


@pytest.mark.asyncio
async def test_service_backfills_history_then_reports_ready(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    """The sim service writes the last days of a small city, announces them as the persister
    would (ReadingsStored per building), and becomes ready."""
    nc = await nats.connect(nats_url)
    announced = await nc.subscribe(subjects.READINGS_STORED_ALL)
    settings = SimSettings(
        database_url=database_url,
        nats_url=nats_url,
        sim_preset="generated",
        sim_buildings=1,
        sim_seed=9,
        sim_epoch=datetime.now(UTC) - timedelta(days=4),
        sim_backfill_days=2,
        sim_ground_truth=tmp_path / "gt.jsonl",
        sim_boot_file=tmp_path / "sim-boot-counter",
        sim_ingest_port=1,  # nothing listens: the concentrators buffer
    )
    ctx = ServiceContext(name="sim", settings=settings)
    task = asyncio.create_task(serve(ctx))
    for _ in range(1200):  # up to a minute
        if ctx.ready or task.done():
            break
        await asyncio.sleep(0.05)
    assert ctx.ready
    ctx.stopping.set()
    await task
    conn = await asyncpg.connect(database_url)
    try:
        hours = await conn.fetchval(
            """select count(distinct ts) from pulse_readings p
               join radio_modules m on m.serial = p.module_serial
               join buildings b on b.id = m.building_id where b.code like 'sim-9-%'"""
        )
        building_id = await conn.fetchval("select id from buildings where code like 'sim-9-%'")
    finally:
        await conn.close()
    event = ReadingsStored.model_validate_json((await announced.next_msg(timeout=10)).data)
    await nc.close()
    assert 47 <= hours <= 48
    assert (tmp_path / "gt.jsonl").exists()
    assert event.building_id == building_id
    assert event.hour_to - event.hour_from >= timedelta(hours=47)
    assert event.rows > 0


def test_cli_runs_a_city_and_rejects_impossible_ones(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`balans sim run` writes readings and ground truth; a too-big building names the limit."""
    from typer.testing import CliRunner

    from balans_core.cli import app
    from balans_sim.cli import register

    register(app)
    monkeypatch.setenv("BALANS_DATABASE_URL", database_url)
    truth = tmp_path / "t.jsonl"
    ok = CliRunner().invoke(
        app,
        [
            "sim",
            "run",
            "--seed",
            "21",
            "--buildings",
            "1",
            "--weeks",
            "0.1",
            "--first-index",
            "900",
            "--fault-rate",
            "0",
            "--exchange-rate",
            "3000",
            "--ground-truth",
            str(truth),
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "rows written" in ok.output
    exchanges = [line for line in truth.read_text().splitlines() if "meter_exchange" in line]
    assert exchanges  # simulated and recorded in the world as an operator would
    assert asyncio.run(_closed_channels(database_url)) == len(exchanges)
    bad = CliRunner().invoke(
        app,
        [
            "sim",
            "run",
            "--preset",
            "generated",
            "--layout-mix",
            "1a=1",
            "--floors",
            "60-60",
            "--buildings",
            "3",
        ],
    )
    assert bad.exit_code != 0
    assert "per concentrator" in bad.output or "per subnet" in bad.output


async def _closed_channels(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("select count(*) from channels where valid_to is not null"))
    finally:
        await conn.close()
