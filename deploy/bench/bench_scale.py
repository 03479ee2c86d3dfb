"""``make bench-scale``: one hour of a simulated city through ingest, persister, allocation
and balance, one stage at a time, each stage a real service process as ``balans run``
starts it.

How a stage is isolated: all four services start and report ready, then every one but
ingest is frozen with SIGSTOP. The concentrators upload the hour (stage 1 ends when every
batch is ACKed, i.e. stored in JetStream). SIGCONT the persister: stage 2 ends when its
durable consumer is drained. Then allocation, then balance, the same way. Each stage's
time is therefore one process working alone on the backlog the previous stage left.

Before the measured hour, ``BENCH_SCALE_HISTORY_H`` hours go straight into PostgreSQL
and are allocated by allocation's own code, and balance's groups are generated (all
untimed): the measured hour meets the steady state of a running deployment. The
baseline, measured in the same run, is a plain COPY of as many rows as the hour has
readings into an unlogged table: the persister's ratio to it shows the cost of idempotence
and partitions on this machine now.

Settings (environment): ``BENCH_SCALE_BUILDINGS`` (default 200, about 22 000 meters),
``BENCH_SCALE_HISTORY_H`` (default 96:
balance judges a group only with 72 hours of series), ``BENCH_SCALE_STAGE_TIMEOUT_S`` (default 300).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client.parser import text_string_to_metric_families

from balans_allocation.allocator import on_readings_stored
from balans_allocation.settings import AllocationSettings
from balans_balance.groups import generate_building_groups
from balans_balance.settings import BalanceSettings
from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_devstack.stack import DevStack, StackUrls
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services
from balans_ingest.settings import PersisterSettings
from balans_protocol import subjects
from balans_protocol.boot import next_boot
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.pgwriter import write_chunks
from balans_sim.runner import connected_concentrators, flush_all
from balans_sim.world import concentrator_keys, write_city

TARGET_METERS = 2_000_000
BUILDINGS = int(os.environ.get("BENCH_SCALE_BUILDINGS", "200"))
# balance judges a group only with 72 h of series behind it
HISTORY_H = int(os.environ.get("BENCH_SCALE_HISTORY_H", "96"))
STAGE_TIMEOUT_S = float(os.environ.get("BENCH_SCALE_STAGE_TIMEOUT_S", "300"))
#: stage -> (stream, durable consumer) whose draining ends the stage
CONSUMERS = {
    "persister": (subjects.UPLOADS_STREAM, PersisterSettings().persister_durable),
    "allocation": (subjects.EVENTS_STREAM, AllocationSettings().allocation_consumer),
    "balance": (subjects.EVENTS_STREAM, BalanceSettings().balance_consumer),
}


#: stage -> the counter that says how much work it did (sum over labels), and its unit
WORK = {
    "persister": ("balans_persister_rows_total", "rows"),
    "allocation": ("balans_allocation_flat_hours_total", "flat-hours"),
    "balance": ("balans_balance_groups_evaluated_total", "groups"),
}


@dataclass
class StageResult:
    name: str
    seconds: float | None
    note: str = ""
    work: str = ""


def counter_sum(service: ServiceProcess, name: str) -> float:
    """Sum over all labels of one counter on the service's /metrics."""
    url = f"http://127.0.0.1:{service.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def drained(
    js: JetStreamContext, service: ServiceProcess, stream: str, durable: str, limit_s: float
) -> str:
    """Wait until ``durable`` exists and has nothing pending or unacknowledged; return why
    not (empty when drained)."""
    began = time.monotonic()
    deadline = began + limit_s
    seen = False
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            return f"{service.name} exited with {service.proc.returncode}, see {service.log_file}"
        try:
            info = await js.consumer_info(stream, durable)
            seen = True
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return ""
        except NotFoundError:
            if not seen and time.monotonic() > began + 30:
                return f"no durable consumer {stream}/{durable} after 30 s (service not wired yet?)"
        await asyncio.sleep(0.05)
    return f"not drained after {limit_s:.0f} s"


async def baseline_copy_rows_per_s(database_url: str, rows: int) -> float:
    """Plain COPY of ``rows`` pulse-like rows into an unlogged table without keys."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "create unlogged table bench_baseline (m bigint, i smallint, ts timestamptz, c bigint)"
        )
        now = datetime.now(UTC)
        records = [(n, n % 6, now, n * 7) for n in range(rows)]
        began = time.perf_counter()
        await conn.copy_records_to_table("bench_baseline", records=records)
        elapsed = time.perf_counter() - began
        await conn.execute("drop table bench_baseline")
        return rows / elapsed
    finally:
        await conn.close()


async def steady_state(conn: asyncpg.Connection, history_from: datetime) -> None:
    """What a running deployment already has before the measured hour: allocation's
    watermark and results over the history, and balance's groups (both services' own
    code, untimed)."""
    settings = AllocationSettings()
    for building_id in await conn.fetchval("select array_agg(id order by id) from buildings"):
        await generate_building_groups(conn, building_id)
        await on_readings_stored(
            conn,
            building_id,
            history_from + timedelta(hours=1),
            timedelta(hours=settings.allocation_lateness_hours),
            settings.allocation_lookaround_hours,
        )


def bound_port(service: ServiceProcess) -> int:
    """The port a service bound with port 0, from its ready line (a port picked in advance
    can be taken by any outgoing connection before the service binds it)."""
    found = re.findall(r"\bready\b.*\bport=(\d+)", service.log_file.read_text())
    if not found:
        raise RuntimeError(f"no port in the ready line of {service.log_file}")
    return int(found[-1])


def freeze(service: ServiceProcess) -> None:
    service.proc.send_signal(signal.SIGSTOP)


def thaw(service: ServiceProcess) -> None:
    service.proc.send_signal(signal.SIGCONT)


async def run(urls: StackUrls, data_dir: Path) -> None:
    vault = KeyVault()
    measured_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1
    )
    start = measured_hour - timedelta(hours=HISTORY_H)
    began = time.perf_counter()
    sim, _ = prepare(CityConfig(seed=11, buildings=BUILDINGS), start, HISTORY_H + 1)
    specs = [b.spec for b in sim.buildings]
    conn = await asyncpg.connect(urls.database_url)
    try:
        await write_city(conn, specs, vault, 11)
        keys = await concentrator_keys(conn, specs, vault)
        history_rows = await write_chunks(conn, sim.advance(HISTORY_H)) if HISTORY_H else 0
        await steady_state(conn, start)
        meters = await conn.fetchval("select count(*) from meters")
        modules = await conn.fetchval("select count(*) from radio_modules")
        flats = await conn.fetchval("select count(*) from flats")
    finally:
        await conn.close()
    hour = sim.advance(1)
    readings = sum(chunk.reading_count() for chunk in hour)
    setup_s = time.perf_counter() - began
    print(
        f"city: {BUILDINGS} buildings, {flats} flats, {meters} meters, {modules} modules; "
        f"{history_rows} history rows written directly; setup {setup_s:.1f} s"
    )
    print(f"measured hour {measured_hour:%Y-%m-%d %H:00} UTC: {readings} readings")

    env = {"BALANS_INGEST_PORT": "0", "BALANS_INGEST_HOST": "127.0.0.1"}
    supervisor = Supervisor(urls, data_dir, env)
    known = discover_services()
    services = {name: supervisor.start(name, known[name]) for name in CONSUMERS | {"ingest": 0}}
    nc = await nats.connect(urls.nats_url)
    results: list[StageResult] = []
    try:
        late = await asyncio.to_thread(supervisor.wait_ready, STAGE_TIMEOUT_S)
        if late:
            raise RuntimeError(f"not ready: {late}")
        work_before = {n: counter_sum(services[n], WORK[n][0]) for n in CONSUMERS}
        for name in CONSUMERS:
            freeze(services[name])
        ingest_port = bound_port(services["ingest"])
        boot = next_boot(data_dir / "sim-boot-counter")
        async with connected_concentrators(
            sim, keys, "127.0.0.1", ingest_port, boot
        ) as concentrators:
            t0 = time.perf_counter()
            for concentrator, chunk in zip(concentrators, hour, strict=True):
                await concentrator.send(chunk)
            await flush_all(concentrators, STAGE_TIMEOUT_S)
            elapsed = time.perf_counter() - t0
        results.append(StageResult("ingest", elapsed, work=f"{len(hour)} uploads"))
        print("  ingest done", flush=True)
        js = nc.jetstream()
        for name, (stream, durable) in CONSUMERS.items():
            thaw(services[name])
            t0 = time.perf_counter()
            note = await drained(js, services[name], stream, durable, STAGE_TIMEOUT_S)
            seconds = None if note else time.perf_counter() - t0
            metric, unit = WORK[name]
            done = counter_sum(services[name], metric) - work_before[name]
            results.append(StageResult(name, seconds, note, f"{done:,.0f} {unit}"))
            print(f"  {name} done", flush=True)
        baseline = await baseline_copy_rows_per_s(urls.database_url, readings)
    finally:
        for service in services.values():
            thaw(service)
        await nc.close()
        await asyncio.to_thread(supervisor.stop)
    report(results, readings, meters, baseline)


def report(results: list[StageResult], readings: int, meters: int, baseline: float) -> None:
    print(f"baseline: plain COPY into an unlogged table {baseline:,.0f} rows/s")
    print(
        f"{'stage':<11} {'seconds':>8} {'readings/s':>11} {'meters/s':>9} {'2M meters':>10}"
        "  work done"
    )
    for r in results:
        if r.seconds is None:
            print(f"{r.name:<11} {'-':>8}  not measured: {r.note}")
            continue
        per_s = readings / r.seconds
        extrapolated = TARGET_METERS / (meters / r.seconds)
        ratio = f" ({per_s / baseline:.2f}x baseline COPY)" if r.name == "persister" else ""
        print(
            f"{r.name:<11} {r.seconds:>8.2f} {per_s:>11,.0f} {meters / r.seconds:>9,.0f} "
            f"{extrapolated:>9,.0f}s  {r.work}{ratio}"
        )
    print("(2M meters: seconds one process of that stage needs for an hour of 2 000 000 meters)")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        stack = DevStack(Path(tmp), durable=False)
        urls = stack.start()
        try:
            migrate.upgrade(urls.database_url)
            asyncio.run(run(urls, Path(tmp)))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
