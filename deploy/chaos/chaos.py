"""``make chaos``: kill every process and server at random moments, then check nothing was
lost, doubled or announced wrongly.

One seeded run, twice over the same simulated city:

1. **reference**: ``balans run`` (ingest, persister, allocation, balance, billing on the
   embedded PostgreSQL and NATS, production durability) takes the city's uploads through
   ingest with nothing killed;
2. **chaos**: the same city again in a fresh data folder while a seeded killer sends
   SIGKILL to a random child of ``balans run`` (PostgreSQL, NATS or a service) at random
   moments; ``balans run``'s supervisor must bring each one back on its own.

Ground truth: the readings are compared with what the simulator generated (every one
stored once); the allocated hours, the invoices and the invoice announcements of the
chaos run are compared with the reference run's (the same readings must give the same
heat, the same invoices and one announcement per invoice).

The city starts on the first day of the previous month, so billing closes that month in
both runs. Settings (environment): ``CHAOS_SEED`` (1), ``CHAOS_BUILDINGS`` (2),
``CHAOS_KILLS`` (12), ``CHAOS_HOURS_PER_S`` (20 simulated hours uploaded a second),
``CHAOS_TIMEOUT_S`` (900, per phase). Each difference found is printed before the last line.

Last line: ``chaos kills=K readings_lost=L readings_doubled=D announcements_missing=A
invoices_wrong=W hours_wrong=H not_recovered=N corrections=C``; all zero but ``kills`` and
``corrections`` is the target. An invoice is wrong when an account has other than one invoice
for a period, or owes in the end (invoice plus corrections) other than in the reference run;
a correction is late data billed as designed (a kill can hold readings past the watermark).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import nats
import psutil
from nats.js.api import ConsumerConfig, DeliverPolicy

from balans_db.secrets import KeyVault
from balans_db.settings import DatabaseSettings
from balans_devstack.eventually import eventually
from balans_devstack.processes import free_port
from balans_protocol import subjects
from balans_protocol.boot import next_boot
from balans_protocol.messages import InvoiceIssued
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.engine import Chunk
from balans_sim.runner import connected_concentrators, flush_all, run_concentrators
from balans_sim.world import concentrator_keys, write_city

SEED = int(os.environ.get("CHAOS_SEED", "1"))
BUILDINGS = int(os.environ.get("CHAOS_BUILDINGS", "2"))
KILLS = int(os.environ.get("CHAOS_KILLS", "12"))
PHASE_TIMEOUT_S = float(os.environ.get("CHAOS_TIMEOUT_S", "900"))
#: simulated hours uploaded per second: slow enough that kills land during the uploads
HOURS_PER_S = float(os.environ.get("CHAOS_HOURS_PER_S", "20"))
SERVICES = ("ingest", "persister", "allocation", "balance", "billing")
#: what the killer may hit: the servers and every service (matched on the command line)
TARGETS = {
    "postgres": re.compile(r"(^|/)postgres(\s|$)"),
    "nats": re.compile(r"nats-server"),
    "ingest": re.compile(r"-m balans_ingest(\.__main__)?$"),
    "persister": re.compile(r"-m balans_ingest\.persister(\.__main__)?$"),
    "allocation": re.compile(r"-m balans_allocation(\.__main__)?$"),
    "balance": re.compile(r"-m balans_balance(\.__main__)?$"),
    "billing": re.compile(r"-m balans_billing(\.__main__)?$"),
}
READINGS_SQL = """
    select (select count(*) from pulse_readings) + (select count(*) from temperature_readings)
         + (select count(*) from module_status)"""
HOURS_SQL = """
    select building_id, flat_id, hour, round(total_kwh::numeric, 6) as kwh
    from heat_allocation where hour < $1 order by 1, 2, 3"""
# per account and period: how many invoices (one is right), what is owed in the end
# (the invoice plus its corrections), and how many corrections it took
INVOICES_SQL = """
    select account_id, period_start, count(*) filter (where kind = 'invoice') as n,
           sum(total) as total, count(*) filter (where kind = 'correction') as corrections,
           array_agg(id) as ids
    from invoices group by 1, 2 order by 1, 2"""
DISTINCT_SQL = """
    select (select count(*) from pulse_readings),
           (select count(*) from (select distinct module_serial, input, ts
                                  from pulse_readings) d)"""


#: the database is down or restarting (the killer's doing): ask again; any other error is a bug
UNREACHABLE = (
    OSError,
    asyncpg.CannotConnectNowError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.PostgresConnectionError,
)


def say(text: str) -> None:
    print(f"[chaos {datetime.now(UTC):%H:%M:%S}] {text}", file=sys.stderr, flush=True)


@dataclass
class System:
    """``balans run`` as a child process, and where its servers answer."""

    data_dir: Path
    ingest_port: int
    proc: subprocess.Popen[str]
    database_url: str = ""
    nats_url: str = ""
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, data_dir: Path) -> System:
        port = free_port()
        env = {
            **os.environ,
            "BALANS_INGEST_PORT": str(port),
            "BALANS_SIM_INGEST_PORT": str(port),
            "BALANS_API_PORT": "0",
            "BALANS_PERIOD_CHECK_INTERVAL_S": "5",
            "BALANS_LOG_FORMAT": "json",
        }
        balans = Path(sys.executable).with_name("balans")
        command = [str(balans), "run", "--data-dir", str(data_dir), "--no-demo"]
        command += ["--no-prometheus", "--services", ",".join(SERVICES)]
        proc = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        system = cls(data_dir, port, proc)
        ready = threading.Event()

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                system.output.append(line.rstrip())
                if line.startswith("PostgreSQL "):
                    system.database_url = line.split()[1]
                elif line.startswith("NATS "):
                    system.nats_url = line.split()[1]
                elif line.startswith("portal:"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 300
        while not ready.wait(1):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(system.output[-30:])
                raise RuntimeError(f"balans run did not become ready:\n{tail}")
        return system

    def children(self) -> dict[str, psutil.Process]:
        """target name -> the live child process that plays it."""
        found: dict[str, psutil.Process] = {}
        for child in psutil.Process(self.proc.pid).children(recursive=True):
            try:
                line = " ".join(child.cmdline())
            except psutil.Error:
                continue
            for name, pattern in TARGETS.items():
                if name not in found and pattern.search(line):
                    found[name] = child
        return found

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Killer:
    """SIGKILLs a random target at random moments; waits for the supervisor to bring it back."""

    system: System
    rng: random.Random
    kills: int = 0
    not_recovered: list[str] = field(default_factory=list)

    async def run(self, count: int, stop: asyncio.Event) -> None:
        while self.kills < count and not stop.is_set():
            await asyncio.sleep(self.rng.uniform(1.0, 8.0))
            target = self.rng.choice(sorted(TARGETS))
            victim = self.system.children().get(target)
            if victim is None:  # died of an earlier kill's effects: the supervisor's turn
                say(f"{target} not running before its kill: waiting for its restart")
                if not await self._back(target, old_pid=-1):
                    say(f"{target} was not restarted")
                    self.not_recovered.append(target)
                    continue
                victim = self.system.children().get(target)
                if victim is None:
                    continue
            victim.kill()
            self.kills += 1
            say(f"kill {self.kills}/{count}: {target} (pid {victim.pid})")
            if not await self._back(target, victim.pid):
                say(f"{target} was not restarted")
                self.not_recovered.append(target)

    async def _back(self, target: str, old_pid: int) -> bool:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            child = self.system.children().get(target)
            if child is not None and child.pid != old_pid:
                return True
            await asyncio.sleep(0.5)
        return False


@dataclass
class Outcome:
    generated: int
    stored: int
    distinct: int
    hours: list[tuple[int, int, datetime, Decimal]]
    invoices: list[asyncpg.Record]
    announced: set[int]


def previous_month(now: datetime) -> datetime:
    """The first day of the month before ``now``'s (UTC midnight; sites are within a day)."""
    first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - timedelta(days=1)).replace(day=1)


def city_start(now: datetime) -> datetime:
    """Two days before the first day of the previous month (UTC): a whole month to close."""
    return previous_month(now) - timedelta(days=2)


async def upload_city(system: System, start: datetime, hours: int, killer: Killer | None) -> int:
    """The simulated city through ingest (with the killer at work); readings generated."""
    config = CityConfig(seed=SEED, buildings=BUILDINGS, floors=(5, 5))
    sim, _ = prepare(config, start, hours, 0.5)
    vault = KeyVault.from_hex(DatabaseSettings().master_key)
    conn = await asyncpg.connect(system.database_url)
    try:
        specs = [b.spec for b in sim.buildings]
        await write_city(conn, specs, vault, config.seed)
        keys = await concentrator_keys(conn, specs, vault)
    finally:
        await conn.close()
    generated = 0

    def note(chunks: list[Chunk]) -> None:
        nonlocal generated
        generated += sum(c.reading_count() for c in chunks)

    boot = next_boot(system.data_dir / "chaos-sim-boot-counter")
    stop = asyncio.Event()
    async with connected_concentrators(
        sim, keys, "127.0.0.1", system.ingest_port, boot
    ) as concentrators:
        chaos = asyncio.create_task(killer.run(KILLS, stop)) if killer else None
        try:
            await run_concentrators(
                sim,
                concentrators,
                hours,
                hours_per_second=HOURS_PER_S,
                stop=asyncio.Event(),
                on_chunk=note,
            )
            await flush_all(concentrators, timeout_s=PHASE_TIMEOUT_S)
            say(f"uploaded {generated} readings, every batch ACKed")
            if chaos is not None:  # the rest of the kills hit allocation, balance and billing
                await asyncio.wait_for(chaos, PHASE_TIMEOUT_S)
        finally:
            stop.set()
    return generated


async def settle_and_read(system: System, generated: int, cutoff: datetime) -> Outcome:
    """Wait until the pipeline has stored, allocated and invoiced everything; read it."""

    async def fetch(sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(system.database_url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def stored_all() -> bool:
        try:
            return (await fetch(READINGS_SQL))[0][0] >= generated
        except UNREACHABLE:
            return False

    async def allocated() -> bool:
        try:
            rows = await fetch("select min(complete_until) from allocation_watermarks")
        except UNREACHABLE:
            return False
        return rows[0][0] is not None and rows[0][0] >= cutoff

    async def invoiced() -> bool:
        try:
            rows = await fetch(
                """select count(*) filter (where not exists (select 1 from invoices i
                   where i.account_id = a.id and i.kind = 'invoice'
                     and i.period_start >= $1::timestamptz - interval '1 day'
                     and i.period_start < $1::timestamptz + interval '1 day')) from accounts a""",
                previous_month(cutoff),
            )
        except UNREACHABLE:
            return False
        return rows[0][0] == 0

    await eventually("every reading stored", stored_all, PHASE_TIMEOUT_S, interval_s=2)
    await eventually(
        "allocation complete up to the cutoff", allocated, PHASE_TIMEOUT_S, interval_s=2
    )
    await eventually(
        "the previous month invoiced for every account", invoiced, PHASE_TIMEOUT_S, interval_s=2
    )
    await asyncio.sleep(10)  # closer passes after the last invoice: a double would show now
    stored = (await fetch(READINGS_SQL))[0][0]
    pulse_rows, pulse_keys = (await fetch(DISTINCT_SQL))[0]
    hours = [(r[0], r[1], r[2], r[3]) for r in await fetch(HOURS_SQL, cutoff)]
    return Outcome(
        generated=generated,
        stored=stored,
        distinct=stored - (pulse_rows - pulse_keys),
        hours=hours,
        invoices=await fetch(INVOICES_SQL),
        announced=await announced_invoices(system.nats_url),
    )


async def announced_invoices(nats_url: str) -> set[int]:
    """Invoice ids announced on NATS (read back from the stream that captures them)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        stream = await js.find_stream_name_by_subject(subjects.invoice(0))
        sub = await js.pull_subscribe(
            subjects.INVOICES_ALL,
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
        )
        ids: set[int] = set()
        while True:
            try:
                batch = await sub.fetch(500, timeout=2)
            except (nats.errors.TimeoutError, TimeoutError):  # nothing more to read
                break
            for msg in batch:
                ids.add(InvoiceIssued.model_validate_json(msg.data).invoice_id)
                await msg.ack()
        return ids
    finally:
        await nc.close()


async def one_run(
    data_dir: Path, start: datetime, hours: int, kills: bool
) -> tuple[Outcome, Killer | None]:
    system = System.start(data_dir)
    say(f"balans run ready in {data_dir} (ingest on {system.ingest_port})")
    killer = Killer(system, random.Random(SEED)) if kills else None
    try:
        generated = await upload_city(system, start, hours, killer)
        outcome = await settle_and_read(system, generated, start + timedelta(hours=hours - 6))
    finally:
        system.stop()
    return outcome, killer


def differences(name: str, expected: dict, got: dict) -> int:
    """Count (and show the first few of) the keys whose values differ between two runs."""
    wrong = sorted(
        (k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)), key=str
    )
    for key in wrong[:5]:
        say(f"{name} differs at {key}: reference {expected.get(key)}, chaos {got.get(key)}")
    return len(wrong)


def compare(reference: Outcome, chaos: Outcome, killer: Killer) -> str:
    lost = max(0, chaos.generated - chaos.stored)
    doubled = max(0, chaos.stored - chaos.generated) + (chaos.stored - chaos.distinct)
    hours_wrong = differences(
        "heat",
        {(b, f, h): kwh for b, f, h, kwh in reference.hours},
        {(b, f, h): kwh for b, f, h, kwh in chaos.hours},
    )

    def invoices(outcome: Outcome) -> dict:
        """(account, period) -> (invoices, amount owed in the end)."""
        return {
            (r["account_id"], r["period_start"]): (r["n"], r["total"]) for r in outcome.invoices
        }

    wrong = differences("invoice", invoices(reference), invoices(chaos))
    issued = {i for r in chaos.invoices for i in r["ids"]}
    missing = len(issued - chaos.announced)
    # late data (a kill delays some readings past the watermark) is billed as a correction,
    # by design: counted, not wrong, as long as what is owed in the end is the reference's
    corrections = sum(r["corrections"] for r in chaos.invoices)
    return (
        f"chaos kills={killer.kills} readings_lost={lost} readings_doubled={doubled} "
        f"announcements_missing={missing} invoices_wrong={wrong} hours_wrong={hours_wrong} "
        f"not_recovered={len(killer.not_recovered)} corrections={corrections}"
    )


async def main() -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = city_start(now)
    hours = int((now - start) / timedelta(hours=1)) - 2
    with tempfile.TemporaryDirectory(prefix="balans-chaos-") as tmp:
        say(
            f"seed {SEED}: {BUILDINGS} buildings, {hours} hours from {start:%Y-%m-%d}, "
            f"{KILLS} kills"
        )
        reference, _ = await one_run(Path(tmp) / "reference", start, hours, kills=False)
        say(f"reference: {reference.stored} readings, {len(reference.invoices)} invoices")
        chaos, killer = await one_run(Path(tmp) / "chaos", start, hours, kills=True)
        assert killer is not None
        print(compare(reference, chaos, killer), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
