"""``make bench-sim``: a week of hourly data of a 10 000-meter city, generated and delivered.

Delivery goes through ingest (TCP -> JetStream -> persister -> PostgreSQL) when the ingest
server and persister are installed; until then it uses the direct COPY path and says so.
The baseline measured in the same run is generation alone; the ratio shows what delivery
costs on top of it. The last line is the one the issue fixes. BENCH_SIM_METERS (default
10 000) sizes the city, for a quick check that the benchmark runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_db.topology import BuildingSpec, plan_equipment
from balans_devstack.stack import DevStack, bench_durable
from balans_devstack.supervisor import Supervisor, discover_services
from balans_protocol.boot import next_boot
from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import hour_index
from balans_sim.engine import CitySim
from balans_sim.pgwriter import write_chunks
from balans_sim.runner import connected_concentrators, flush_all, run_concentrators
from balans_sim.world import concentrator_keys, write_city

TARGET_METERS = int(os.environ.get("BENCH_SIM_METERS", "10000"))
HOURS = 168
START = datetime(2026, 1, 5, tzinfo=UTC)
READINGS_SQL = """select (select count(*) from pulse_readings) + (select count(*) from
    temperature_readings) + (select count(*) from module_status)"""


def ten_thousand_meter_city() -> list[BuildingSpec]:
    city: list[BuildingSpec] = []
    meters = 0
    for spec in generate_city(CityConfig(seed=1, buildings=200, floors=(9, 12))):
        if meters >= TARGET_METERS:
            break
        city.append(spec)
        meters += len(plan_equipment(spec).meters)
    return city


def ingest_available() -> bool:
    services = discover_services()
    return "persister" in services and importlib.util.find_spec("balans_ingest.server") is not None


async def deliver(
    urls_db: str, city: list[BuildingSpec], via_ingest: bool, port: int, boot: int
) -> float:
    sim = CitySim(city, 1, hour_index(START))
    conn = await asyncpg.connect(urls_db)
    try:
        vault = KeyVault()
        await write_city(conn, city, vault, 1)
        keys = await concentrator_keys(conn, city, vault)
        began = time.perf_counter()
        generated: list[int] = []
        if via_ingest:
            async with connected_concentrators(sim, keys, "127.0.0.1", port, boot) as concentrators:
                await run_concentrators(
                    sim,
                    concentrators,
                    HOURS,
                    hours_per_second=None,
                    stop=asyncio.Event(),
                    on_chunk=lambda chunks: generated.extend(c.reading_count() for c in chunks),
                )
                await flush_all(concentrators, timeout_s=900)
        else:
            for _ in range(HOURS // 24):
                chunks = sim.advance(24)
                generated.extend(c.reading_count() for c in chunks)
                await write_chunks(conn, chunks)
        for _ in range(4500):  # the persister commits after the ACK: up to 15 minutes
            if await conn.fetchval(READINGS_SQL) >= sum(generated):
                break
            await asyncio.sleep(0.2)
        return sum(generated) / (time.perf_counter() - began)
    finally:
        await conn.close()


def main() -> None:
    city = ten_thousand_meter_city()
    meters = sum(len(plan_equipment(s).meters) for s in city)
    sim = CitySim(city, 1, hour_index(START))
    began = time.perf_counter()
    readings = sum(c.reading_count() for _ in range(HOURS // 24) for c in sim.advance(24))
    generate_rate = readings / (time.perf_counter() - began)
    via_ingest = ingest_available()
    with tempfile.TemporaryDirectory() as tmp, DevStack(Path(tmp), durable=bench_durable()) as urls:
        migrate.upgrade(urls.database_url)
        # START is fixed (its weather is known): ingest must accept readings that old
        horizon = (datetime.now(UTC) - START).days + 30
        env = {"BALANS_INGEST_PORT": "4199", "BALANS_READINGS_HORIZON_DAYS": str(horizon)}
        supervisor = Supervisor(urls, Path(tmp), env)
        try:
            if via_ingest:
                for name in ("ingest", "persister"):
                    supervisor.start(name, discover_services()[name])
                late = supervisor.wait_ready(120)
                if late:
                    raise RuntimeError(f"not ready: {late}")
            boot = next_boot(Path(tmp) / "sim-boot-counter")
            rate = asyncio.run(deliver(urls.database_url, city, via_ingest, 4199, boot))
        finally:
            supervisor.stop()
    print(f"city: {len(city)} buildings, {meters} meters, {readings} readings in {HOURS} hours")
    path = "ingest (TCP, JetStream, persister)" if via_ingest else "direct COPY (no ingest server)"
    print(f"delivery path: {path}")
    print(f"delivered / generate-only (baseline, same run): {rate / generate_rate:.2f}")
    print(
        f"sim meters={meters} hours={HOURS} readings_per_s={rate:.0f} "
        f"generate_only_readings_per_s={generate_rate:.0f}"
    )


if __name__ == "__main__":
    main()
