"""End-to-end ingest benchmark (`make bench-ingest`).

BENCH_CONCENTRATORS (200) concentrators, each with BENCH_METERS_PER_CONCENTRATOR (500)
meters, upload one day of hourly pulse registers (24 batches each) over TCP to the ingest
service, which publishes to JetStream; the persister writes them to ``pulse_readings``.
ingest and the persister run as their own processes, exactly as deployed; the
concentrators run in this process. The figure is readings stored per second, from the
first upload until the last row is in the table.

Baseline in the same run, on the same table (truncated first): asyncpg
``copy_records_to_table`` of the same rows, prebuilt, in one call.

BENCH_PROFILE=1 runs ingest and the persister under cProfile and prints their top
functions (slower; the ratio of such a run is not the figure to quote).

The servers run as ``balans run`` and compose do: PostgreSQL with fsync and synchronous
commit, JetStream fsyncing every write before its ACK; ``BENCH_DURABLE=0`` turns both off
for a quicker run whose figures are not to be quoted.
"""

from __future__ import annotations

import asyncio
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import uvloop
from ingest_harness import recent_day

from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_devstack.processes import free_port
from balans_devstack.stack import DevStack, bench_durable
from balans_protocol.client import ConcentratorClient
from balans_protocol.records import PulseRecord

CONCENTRATORS = int(os.environ.get("BENCH_CONCENTRATORS", "200"))
METERS = int(os.environ.get("BENCH_METERS_PER_CONCENTRATOR", "500"))
HOURS = 24
INPUTS = 4
DAY0 = recent_day()  # readings must be dated inside the window ingest accepts
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
SERIAL0 = 2_000_000


def module_of(concentrator: int, meter: int) -> int:
    return concentrator * 1000 + meter // INPUTS


async def seed(database_url: str, vault: KeyVault) -> dict[int, bytes]:
    """One site, a building and a concentrator per concentrator; return serial -> key."""
    conn = await asyncpg.connect(database_url)
    keys = {SERIAL0 + c: os.urandom(32) for c in range(CONCENTRATORS)}
    try:
        site = await conn.fetchval(
            """insert into sites (code, name, address, latitude, longitude)
               values ('bench', 'Bench', 'Bench', 47.0, 28.8) returning id"""
        )
        for serial, key in keys.items():
            building = await conn.fetchval(
                """insert into buildings (site_id, code, name, address, floors, layout)
                   values ($1, $2, $2, 'Bench', 9, '1a') returning id""",
                site,
                f"bench-{serial}",
            )
            concentrator = await conn.fetchval(
                """insert into concentrators (serial, building_id, key_ciphertext)
                   values ($1, $2, $3) returning id""",
                serial,
                building,
                vault.seal(key, context=str(serial).encode()),
            )
            await conn.execute(  # ingest refuses readings of modules not registered here
                """insert into radio_modules (serial, concentrator_id, subnet, building_id, floor)
                   select s, $2, 0, $3, 1 from unnest($1::bigint[]) as s""",
                sorted({module_of(serial - SERIAL0, m) for m in range(METERS)}),
                concentrator,
                building,
            )
    finally:
        await conn.close()
    return keys


def day_batches(c: int) -> list[list[PulseRecord]]:
    return [
        [
            PulseRecord(module_of(c, m), m % INPUTS, DAY0 + (h + 1) * 3600, h * 3 + m)
            for m in range(METERS)
        ]
        for h in range(HOURS)
    ]


def start_service(
    module: str, env: dict[str, str], profile_to: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    argv = [sys.executable]
    if profile_to is not None:
        argv += ["-m", "cProfile", "-o", str(profile_to)]
    proc = subprocess.Popen(
        [*argv, "-m", module],
        env={**os.environ, **env, "BALANS_HEALTH_PORT": str(port), "BALANS_LOG_LEVEL": "warning"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{module} not ready")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU time of a process and its live children (a postmaster and its backends)."""
    total = cpu_seconds(root)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root:
                    total += cpu_seconds(int(entry.name))
            except (OSError, ValueError):
                continue  # the process ended meanwhile
    return total


async def upload_all(port: int, keys: dict[int, bytes]) -> None:
    clients = [
        ConcentratorClient(serial, key, "127.0.0.1", port, boot=1, max_pending=HOURS)
        for serial, key in keys.items()
    ]
    batches = {c.serial: day_batches(c.serial - SERIAL0) for c in clients}

    async def one(client: ConcentratorClient) -> None:
        client.start()
        await client.wait_connected()
        for batch in batches[client.serial]:
            await client.upload(batch)
        await client.flush()

    try:
        await asyncio.gather(*(one(c) for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    rejected = sum(len(c.stats.rejected) for c in clients)
    if rejected:
        raise RuntimeError(f"{rejected} batches rejected")


async def wait_rows(conn: asyncpg.Connection, expected: int) -> None:
    count = "select count(*) from pulse_readings"
    while await conn.fetchval(count) < expected:  # noqa: ASYNC110 - polling a table
        await asyncio.sleep(0.05)


async def baseline_copy(conn: asyncpg.Connection, total: int) -> float:
    await conn.execute("truncate pulse_readings")
    rows = [
        (module_of(c, m), m % INPUTS, datetime.fromtimestamp(DAY0 + (h + 1) * 3600, UTC), h * 3 + m)
        for c in range(CONCENTRATORS)
        for h in range(HOURS)
        for m in range(METERS)
    ]
    assert len(rows) == total
    started = time.perf_counter()
    await conn.copy_records_to_table(
        "pulse_readings", records=rows, columns=["module_serial", "input", "ts", "count"]
    )
    return total / (time.perf_counter() - started)


def print_profile(name: str, path: Path) -> None:
    stats = pstats.Stats(str(path))
    print(f"profile {name}: top functions by own time")
    stats.sort_stats("tottime").print_stats(8)


async def bench(urls_db: str, urls_nats: str, servers: dict[str, int]) -> None:
    """``servers``: name -> pid of the PostgreSQL and NATS servers (for CPU accounting)."""
    keys = await seed(urls_db, KeyVault())
    total = CONCENTRATORS * METERS * HOURS
    env = {
        "BALANS_DATABASE_URL": urls_db,
        "BALANS_NATS_URL": urls_nats,
        "BALANS_INGEST_PORT": str(free_port()),
        "BALANS_INGEST_HOST": "127.0.0.1",
    }
    profiles = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    ingest, _ = start_service("balans_ingest", env, profiles / "ingest.prof" if PROFILE else None)
    persister, _ = start_service(
        "balans_ingest.persister", env, profiles / "persister.prof" if PROFILE else None
    )
    conn = await asyncpg.connect(urls_db)
    try:
        pids = {"ingest": ingest.pid, "persister": persister.pid, **servers}
        cpu0 = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
        proc0 = time.process_time()
        started = time.perf_counter()
        await upload_all(int(env["BALANS_INGEST_PORT"]), keys)
        acked = time.perf_counter() - started
        await wait_rows(conn, total)
        elapsed = time.perf_counter() - started
        cpu = {name: tree_cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
        cpu["concentrators"] = time.process_time() - proc0
        for proc in (ingest, persister):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        copy_rate = await baseline_copy(conn, total)
    finally:
        await conn.close()
        for proc in (ingest, persister):
            if proc.poll() is None:
                proc.kill()
    e2e = total / elapsed
    print(
        f"ingest setup concentrators={CONCENTRATORS} meters={CONCENTRATORS * METERS} "
        f"hours={HOURS} readings={total} frames={CONCENTRATORS * HOURS}"
    )
    print(f"ingest all_acked_s={acked:.2f} all_stored_s={elapsed:.2f}")
    shares = " ".join(f"{name}={seconds:.1f}" for name, seconds in cpu.items())
    print(f"ingest cpu_s {shares} sum={sum(cpu.values()):.1f} of {2 * elapsed:.1f} core-s")
    if PROFILE:
        print_profile("ingest", profiles / "ingest.prof")
        print_profile("persister", profiles / "persister.prof")
    ratio = e2e / copy_rate
    print(f"ingest e2e_readings_per_s={e2e:.0f} copy_rows_per_s={copy_rate:.0f} ratio={ratio:.2f}")


def main() -> None:
    subprocess.run([sys.executable, "libs/protocol/bench/bench_codec.py"], check=True)
    with tempfile.TemporaryDirectory(prefix="bench-ingest-stack-") as data:
        stack = DevStack(data, durable=bench_durable())
        with stack as urls:
            migrate.upgrade(urls.database_url)
            servers = {
                name: server.proc.pid
                for name, server in (("postgres", stack.postgres), ("nats", stack.nats))
                if server is not None and server.proc is not None
            }
            uvloop.run(bench(urls.database_url, urls.nats_url, servers))


if __name__ == "__main__":
    main()
