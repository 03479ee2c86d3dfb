"""The fleet collector against real PostgreSQL and JetStream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import nats
import pytest
from nats.js.api import ConsumerConfig, StreamConfig
from prometheus_client import REGISTRY

from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import SiteSpec, regular_building
from balans_fleet.collector import FleetCollector
from balans_fleet.settings import FleetSettings

SITE = SiteSpec(code="ops-site", name="Ops", address="str. Ops 1", latitude=47.0, longitude=28.8)


def _small_building(code: str, index: int) -> object:
    return regular_building(
        code=code,
        name=code,
        address="str. Ops 1",
        site=SITE,
        layout="1a",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=index,
    )


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


@pytest.fixture(scope="module")
async def fleet_db(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """Two buildings: one whose modules report (one with a low battery), one silent."""
    await seed(database_url, KeyVault.from_hex(None), [_small_building("ops-a", 1)])
    await seed(database_url, KeyVault.from_hex(None), [_small_building("ops-b", 2)])
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    serials = await pool.fetch(
        "select m.serial from radio_modules m join buildings b on b.id = m.building_id "
        "where b.code = 'ops-a' order by m.serial"
    )
    assert len(serials) >= 2
    rows = [(s["serial"], now, 3550, -80, 1, 0, False, 0) for s in serials]
    rows[0] = (serials[0]["serial"], now, 2900, -80, 1, 0, False, 0)  # low battery now
    rows.append((serials[0]["serial"], now - timedelta(hours=5), 3600, -80, 1, 0, False, 0))
    await pool.copy_records_to_table(
        "module_status",
        records=rows,
        columns=[
            "module_serial",
            "ts",
            "battery_mv",
            "rssi_dbm",
            "hops",
            "parent_serial",
            "tamper",
            "error_bits",
        ],
    )
    meters = await pool.fetch("select id from meters where utility = 'heat' order by id limit 4")
    consumption = [
        (m["id"], now - timedelta(hours=h), 1.0, "kWh", i == 0, 0)
        for i, m in enumerate(meters)
        for h in (1, 2)
    ]
    await pool.copy_records_to_table(
        "meter_consumption",
        records=consumption,
        columns=["meter_id", "hour", "value", "unit", "estimated", "flags"],
    )
    try:
        yield pool
    finally:
        await pool.close()


async def test_fleet_counts_silent_low_battery_and_estimated(
    fleet_db: asyncpg.Pool, nats_url: str
) -> None:
    """Silent concentrators, low batteries and the estimated share come out of the data."""
    nc = await nats.connect(nats_url)
    try:
        settings = FleetSettings(fleet_low_battery_mv=3100)
        result = await FleetCollector(settings, fleet_db, nc.jetstream()).refresh()
    finally:
        await nc.close()
    assert result == {"concentrators": True, "battery": True, "estimated": True, "jetstream": True}
    assert _gauge("balans_fleet_concentrators") == 2
    assert _gauge("balans_fleet_concentrators_silent") == 1
    assert _gauge("balans_fleet_modules_low_battery") == 1
    reporting = await fleet_db.fetchval("select count(distinct module_serial) from module_status")
    assert _gauge("balans_fleet_modules_reporting") == reporting
    assert _gauge("balans_fleet_estimated_share", utility="heat") == pytest.approx(0.25)


async def test_fleet_reports_stream_fill_and_consumer_backlog(
    fleet_db: asyncpg.Pool, nats_url: str
) -> None:
    """A stream's size, limits, a durable consumer's backlog and lag become gauges; a
    consumer filtered to other subjects has neither."""
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    try:
        await js.add_stream(
            StreamConfig(name="OPSTEST", subjects=["opstest.>"], max_bytes=1_000_000)
        )
        await js.add_consumer("OPSTEST", ConsumerConfig(durable_name="opsdurable"))
        await js.add_consumer(
            "OPSTEST", ConsumerConfig(durable_name="opsfiltered", filter_subject="opstest.y")
        )
        for i in range(5):
            await js.publish("opstest.x", f"m{i}".encode())
        await asyncio.sleep(0.3)
        result = await FleetCollector(FleetSettings(), fleet_db, js).refresh()
        await js.delete_stream("OPSTEST")
    finally:
        await nc.close()
    assert result["jetstream"] is True
    assert _gauge("balans_fleet_jetstream_stream_messages", stream="OPSTEST") == 5
    assert _gauge("balans_fleet_jetstream_stream_max_bytes", stream="OPSTEST") == 1_000_000
    pending = _gauge(
        "balans_fleet_jetstream_consumer_pending", stream="OPSTEST", consumer="opsdurable"
    )
    assert pending == 5
    lag = _gauge(
        "balans_fleet_jetstream_consumer_lag_seconds", stream="OPSTEST", consumer="opsdurable"
    )
    assert lag is not None
    assert 0.3 <= lag < 30
    filtered = {"stream": "OPSTEST", "consumer": "opsfiltered"}
    assert _gauge("balans_fleet_jetstream_consumer_pending", **filtered) == 0
    assert _gauge("balans_fleet_jetstream_consumer_lag_seconds", **filtered) == 0


async def test_fleet_counts_a_failing_source_and_keeps_the_others(
    empty_database_url: str, nats_url: str
) -> None:
    """Without the schema the SQL sources fail, are counted, and JetStream still refreshes."""
    before = _gauge("balans_fleet_refresh_errors_total", source="battery") or 0.0
    pool = await asyncpg.create_pool(empty_database_url, min_size=1, max_size=1)
    nc = await nats.connect(nats_url)
    try:
        result = await FleetCollector(FleetSettings(), pool, nc.jetstream()).refresh()
    finally:
        await nc.close()
        await pool.close()
    assert result == {
        "concentrators": False,
        "battery": False,
        "estimated": False,
        "jetstream": True,
    }
    assert _gauge("balans_fleet_refresh_errors_total", source="battery") == before + 1
