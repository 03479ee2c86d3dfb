"""``make bench-scale``: one hour of a simulated city through ingest, persister, allocation
and balance, one stage at a time, each stage a real service process as ``balans run``
starts it.

How a stage is isolated: all four services start and report ready, then every one but
ingest is frozen with SIGSTOP. The concentrators upload the hour (stage 1 ends when every
batch is ACKed, i.e. stored in JetStream). SIGCONT the persister: stage 2 ends when its
durable consumer is drained. Then allocation, then balance, the same way. Each stage's
time is therefore one process working alone on the backlog the previous stage left.

When a stage ends is what JetStream recorded, not when the benchmark's poll noticed: the
last acknowledgement of the stage's consumers (``ack_floor.last_active``: a service acks
an event only after committing what it did with it) or the last message the stage
published (its announcements, sent by its outbox relay after the commit; the poll also
waits until its outbox is empty), whichever is later, against the wall clock at SIGCONT.
A poll every tenth of a second would otherwise add up to that much to the figure (at 50
buildings each 0.1 s is 43 s of a 2M-meter figure). What the time was made of is printed
per stage: when the last event was delivered, acked, and announced.

What each stage cost PostgreSQL is printed too, from ``pg_stat_statements`` (its
statements' WAL bytes and records, full-page images, 8 kB pages read into shared buffers,
dirtied and written, and the three statements that dirtied and read the most), and per
hour as a ``pg`` line: counts of work that a loaded machine does not change, so a change
to the write path shows at 50 buildings what it does at 1000.

Before the measured hour, the steady state of a running deployment, untimed: the history
(balance's whole window, ``BENCH_SCALE_HISTORY_H`` hours) goes straight into PostgreSQL
with COPY and is allocated by allocation's own code, and balance's groups are generated.
Then one warm-up hour goes through the pipeline the same way as the measured one: balance
has no building's window yet and reads every one in full (what a restarted process does;
its time is printed, not part of the last line), and keeps them for the measured hour.
The baseline, measured in the same run, is a plain COPY of as many rows as the hour has
readings into an unlogged table: the persister's ratio to it shows the cost of idempotence
and partitions on this machine now.

Settings (environment): ``BENCH_SCALE_BUILDINGS`` (default 200, about 22 000 meters),
``BENCH_SCALE_HISTORY_H`` (default: balance's window, 35 days),
``BENCH_SCALE_STAGE_TIMEOUT_S`` (default 1800), ``BENCH_SCALE_CHECKPOINT`` (default 1: a
PostgreSQL checkpoint before each stage, see :data:`CHECKPOINT`; 0 leaves it to the
server's schedule, as before session 10), ``BENCH_SCALE_HOURS`` (default 1: hours
measured one after the other, each printed; with more than one the last line is each
stage's median over them, which a shared machine's noise moves less). The last line is
``scale ingest_s=<a> persister_s=<b> allocation_s=<c> balance_s=<d> total_2m_s=<a+b+c+d>``,
each figure one process's seconds for one hour of 2 000 000 meters.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
from nats.js.client import JetStreamContext
from prometheus_client.parser import text_string_to_metric_families

from balans_allocation.allocator import on_readings_stored_many
from balans_allocation.settings import AllocationSettings
from balans_balance.groups import generate_building_groups
from balans_balance.settings import BalanceSettings
from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_devstack.stack import DevStack, StackUrls, bench_durable
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services
from balans_ingest.settings import PersisterSettings
from balans_protocol import subjects
from balans_protocol.boot import next_boot
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.concentrator import SimConcentrator
from balans_sim.engine import Chunk, CitySim
from balans_sim.pgwriter import copy_chunks
from balans_sim.runner import connected_concentrators, flush_all
from balans_sim.world import concentrator_keys, write_city

TARGET_METERS = 2_000_000
BUILDINGS = int(os.environ.get("BENCH_SCALE_BUILDINGS", "200"))
# balance's whole window: its detectors judge 35 days of every series
HISTORY_H = int(
    os.environ.get("BENCH_SCALE_HISTORY_H", str(BalanceSettings().balance_window_days * 24))
)
STAGE_TIMEOUT_S = float(os.environ.get("BENCH_SCALE_STAGE_TIMEOUT_S", "1800"))
# hours measured one after the other; the last line is each stage's median over them
MEASURED_HOURS = int(os.environ.get("BENCH_SCALE_HOURS", "1"))
#: a checkpoint before each stage (untimed), as a deployment has between one hour's work
#: and the next (PostgreSQL checkpoints every 5-15 minutes): the stage's first change of
#: each page then logs the whole page, and its pages dirtied and full-page images count
#: exactly the pages it touched, whatever earlier stages left in memory
CHECKPOINT = os.environ.get("BENCH_SCALE_CHECKPOINT", "1") != "0"
HISTORY_STEP_H = 168  # hours simulated and written at a time (memory)
ALLOCATION_BATCH = 32  # buildings allocated in one call while priming
PRIME_WORKERS = 2  # connections priming at once: one's kernels run while the other's SQL does
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
    pg: dict[str, int] | None = None  # PgCost.total() of the stage


WINDOW_READS = "balans_balance_window_reads_total"
ANALYSES = "balans_balance_analyses_total"  # by when: on the building's turn, or deferred
STORED_READINGS = "balans_balance_stored_readings_events_total"  # by what a note did
CPU_SECONDS = "process_cpu_seconds_total"
BATCHES = "balans_allocation_batch_buildings_count"  # one per share of a batch
COMPUTE = "balans_allocation_compute_seconds_sum"  # the shares' load, compute and write
WRITES = "balans_persister_batch_seconds"  # one per batch: its transaction, to the commit
#: stage -> its outbox, whose announcements (sent after the commit) are part of its work
OUTBOXES = {"allocation": "allocation_outbox", "balance": "balance_outbox"}
#: the streams the measured stages publish to (ingest's UPLOADS is its own stage's)
OUTPUT_STREAMS = (subjects.EVENTS_STREAM, subjects.ALERTS_STREAM)
POLL_S = 0.1  # the drain poll's interval: it says when to look, not when the stage ended


def metric_samples(service: ServiceProcess, name: str) -> list:
    """The samples of one metric on the service's /metrics."""
    url = f"http://127.0.0.1:{service.health_port}/metrics"
    # a process held to a fraction of a core on a loaded machine may answer late
    with urllib.request.urlopen(url, timeout=60) as response:
        text = response.read().decode()
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def counter_by_label(service: ServiceProcess, name: str, label: str) -> dict[str, float]:
    """One counter on the service's /metrics, by the value of ``label``."""
    out: dict[str, float] = {}
    for sample in metric_samples(service, name):
        key = sample.labels.get(label, "")
        out[key] = out.get(key, 0.0) + sample.value
    return out


def counter_sum(service: ServiceProcess, name: str) -> float:
    """Sum over all labels of one counter on the service's /metrics."""
    return sum(sample.value for sample in metric_samples(service, name))


#: JetStream API answers a poll may lack while a cluster elects new leaders
JETSTREAM_AWAY = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
)


async def stage_durables(js: JetStreamContext, stream: str, durable: str) -> list[str]:
    """The stage's durable consumers on ``stream``: ``durable`` itself, or one per event
    partition (``<durable>-pNN``, each carrying every kind the stage consumes) when the stage
    consumes partitioned."""
    names = [c.name for c in await js.consumers_info(stream)]
    return [n for n in names if n == durable or n.startswith(f"{durable}-p")]


async def drained(
    js: JetStreamContext,
    service: ServiceProcess,
    stream: str,
    durable: str,
    limit_s: float,
    outbox_pending: Callable[[], Awaitable[int]] | None = None,
    poll_s: float = POLL_S,
) -> str:
    """Wait until the stage's durable consumers exist and have nothing pending or
    unacknowledged (and ``outbox_pending`` says nothing is left to announce), asking every
    ``poll_s``; return why not (empty when drained)."""
    began = time.monotonic()
    deadline = began + limit_s
    # the stream's consumers are listed once, and again only to confirm a drain (a consumer
    # made since): listing them all on every poll cost the cluster about as much CPU as the
    # partitions' infos, taken from the cores the measured stage runs on
    durables: list[str] = []
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            return f"{service.name} exited with {service.proc.returncode}, see {service.log_file}"
        try:
            if not durables:
                durables = await stage_durables(js, stream, durable)
            if not durables and time.monotonic() > began + 30:
                return f"no durable consumer {stream}/{durable} after 30 s (not wired yet?)"
            # all at once: one after the other, 16 partitions' requests made the poll itself
            # a tenth of a second on a busy machine, as long as allocation's whole hour
            infos = await asyncio.gather(*(js.consumer_info(stream, d) for d in durables))
            idle = bool(infos) and all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos)
            if idle and (made := set(await stage_durables(js, stream, durable)) - set(durables)):
                durables += sorted(made)
                continue
        except JETSTREAM_AWAY as exc:
            # a NATS node killed (bench-scale-out): the cluster elects new leaders and
            # answers again within seconds; the deadline still bounds the wait
            print(f"  (poll: {exc!r}; asking again)", flush=True)
            idle = False
        if idle and (outbox_pending is None or await outbox_pending() == 0):
            return ""
        await asyncio.sleep(poll_s)
    return f"not drained after {limit_s:.0f} s"


@dataclass
class StageClock:
    """Where a stage started: the wall clock at SIGCONT (JetStream's times are wall-clock
    times of the same machine) and the last sequence of each output stream then."""

    thawed: datetime
    last_seqs: dict[str, int]

    @classmethod
    async def start(cls, js: JetStreamContext) -> StageClock:
        seqs = {s: (await js.stream_info(s)).state.last_seq for s in OUTPUT_STREAMS}
        return cls(datetime.now(UTC), seqs)


@dataclass
class Timeline:
    """Seconds from a stage's SIGCONT to its last delivery, acknowledgement and message
    published (None: none in this stage)."""

    delivered: float | None
    acked: float | None
    published: float | None

    @property
    def end(self) -> float | None:
        """The stage's end: its last acknowledgement or published message."""
        done = [t for t in (self.acked, self.published) if t is not None]
        return max(done) if done else None

    def describe(self) -> str:
        parts = [
            f"{what} +{t:.3f} s"
            for what, t in (
                ("last delivery", self.delivered),
                ("last ack", self.acked),
                ("last announcement", self.published),
            )
            if t is not None
        ]
        return ", ".join(parts)


async def timeline(js: JetStreamContext, stream: str, durable: str, clock: StageClock) -> Timeline:
    """When the drained stage did its last delivery, ack and publish, as JetStream recorded
    them (times before the thaw belong to an earlier stage and are left out)."""

    def since(times: list[datetime | None]) -> float | None:
        after = [(t - clock.thawed).total_seconds() for t in times if t and t >= clock.thawed]
        return max(after) if after else None

    durables = await stage_durables(js, stream, durable)
    infos = await asyncio.gather(*(js.consumer_info(stream, d) for d in durables))
    published: list[datetime | None] = []
    for name, seq in clock.last_seqs.items():
        last = (await js.stream_info(name)).state.last_seq
        if last > seq:
            published.append((await js.get_msg(name, seq=last)).time)
    return Timeline(
        since([i.delivered.last_active for i in infos if i.delivered]),
        since([i.ack_floor.last_active for i in infos if i.ack_floor]),
        since(published),
    )


#: pg_stat_statements' counters summed per stage: what the stage's statements cost
#: PostgreSQL in shared buffers (8 kB pages) and WAL, the same on a loaded machine or a quiet
PG_COUNTERS = (
    "shared_blks_hit", "shared_blks_read", "shared_blks_dirtied", "shared_blks_written",
    "wal_records", "wal_fpi", "wal_bytes",
)  # fmt: skip


@dataclass
class PgCost:
    """pg_stat_statements' counters per statement (query id -> (text, counters))."""

    statements: dict[int, tuple[str, tuple[int, ...]]]

    @classmethod
    async def take(cls, conn: asyncpg.Connection) -> PgCost:
        rows = await conn.fetch(
            f"""select queryid, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) as text,
                       {", ".join(f"{c}::bigint" for c in PG_COUNTERS)}
                from pg_stat_statements where toplevel
                  and query not like '%pg_stat_statements%'"""
        )
        return cls({r[0]: (r[1], tuple(r[2:])) for r in rows})

    def since(self, before: PgCost) -> PgCost:
        """The counters' growth since ``before`` (statements that did something)."""
        out = {}
        for qid, (text, now) in self.statements.items():
            was = before.statements.get(qid, (text, (0,) * len(PG_COUNTERS)))[1]
            grown = tuple(n - w for n, w in zip(now, was, strict=True))
            if any(grown):
                out[qid] = (text, grown)
        return PgCost(out)

    def total(self) -> dict[str, int]:
        sums = [sum(c[i] for _, c in self.statements.values()) for i in range(len(PG_COUNTERS))]
        return dict(zip(PG_COUNTERS, sums, strict=True))

    def describe(self, top: int = 3) -> str:
        """The totals, and the statements that dirtied and read the most pages."""
        t = self.total()
        line = (
            f"pg: WAL {t['wal_bytes'] / 2**20:,.1f} MB ({t['wal_records']:,} records,"
            f" {t['wal_fpi']:,} full pages), pages read {t['shared_blks_read']:,}"
            f" dirtied {t['shared_blks_dirtied']:,} written {t['shared_blks_written']:,}"
            f" hit {t['shared_blks_hit']:,}"
        )
        worst = sorted(self.statements.values(), key=lambda s: -(s[1][1] + s[1][2]))[:top]
        for text, c in worst:
            line += (
                f"\n      {c[2]:>9,} dirtied {c[1]:>9,} read {c[6] / 2**20:>7,.1f} MB WAL  {text}"
            )
        return line


async def enable_pg_cost(database_url: str) -> None:
    """The view of pg_stat_statements (its library is preloaded by the dev stack)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("create extension if not exists pg_stat_statements")
    finally:
        await conn.close()


def outbox_counter(conn: asyncpg.Connection, table: str) -> Callable[[], Awaitable[int]]:
    """How many of ``table``'s announcements are not yet sent, asked anew each call."""

    async def pending() -> int:
        return await conn.fetchval(f"select count(*) from {table} where sent_at is null")

    return pending


#: what allocation stored for the measured hour, value columns only (not when or which
#: revision), in key order: the same on the same city whatever the code's speed
DIGESTED = (
    ("heat_allocation", "flat_id, hour", "measured_kwh, estimated, common_kwh, total_kwh, "
     "flags, method, volume_m3, delta_t_k, k_kwh_per_m3k, adjustment_kwh"),
    ("meter_consumption", "meter_id, hour", "value, unit, estimated, flags"),
    ("allocation_building_hours", "building_id, hour", "building_kwh, flats_measured_kwh, "
     "common_kwh, estimated_area_fraction, flags"),
    ("heat_allocation_days", "flat_id, day", "total_kwh, hours, estimated"),
    ("meter_consumption_days", "meter_id, day", "value, hours, estimated"),
    ("allocation_watermarks", "building_id", "complete_until"),
)  # fmt: skip


async def allocation_digest(conn: asyncpg.Connection, hour: datetime) -> str:
    """md5 of allocation's rows of ``hour`` (and of its day, and the watermarks): a faster
    allocation must store the same bits."""
    parts = []
    for table, key, values in DIGESTED:
        where = (
            "where hour = $1" if "hour" in key
            else "where day = ($1::timestamptz at time zone 'UTC')::date" if "day" in key
            else "where $1::timestamptz is not null"
        )  # fmt: skip
        parts.append(
            await conn.fetchval(
                f"select md5(coalesce(string_agg(({key}, {values})::text, ';' order by {key}),"
                f" '')) from {table} {where}",
                hour,
            )
        )
    return hashlib.md5(":".join(parts).encode()).hexdigest()


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


async def steady_state(
    conn: asyncpg.Connection, database_url: str, history_from: datetime, times: dict[str, float]
) -> None:
    """What a running deployment already has before the measured hour: balance's groups and
    allocation's watermark and results over the history (both services' own code, untimed;
    allocation in batches on :data:`PRIME_WORKERS` connections at once, buildings split
    between them); adds their seconds to ``times``."""
    settings = AllocationSettings()
    buildings = await conn.fetchval("select array_agg(id order by id) from buildings")
    t0 = time.perf_counter()
    for building_id in buildings:
        await generate_building_groups(conn, building_id)
    times["groups"] = time.perf_counter() - t0

    async def prime(share: list[int]) -> None:
        worker = await asyncpg.connect(database_url)
        try:
            for i in range(0, len(share), ALLOCATION_BATCH):
                await on_readings_stored_many(
                    worker,
                    {b: history_from + timedelta(hours=1) for b in share[i : i + ALLOCATION_BATCH]},
                    timedelta(hours=settings.allocation_lateness_hours),
                    settings.allocation_lookaround_hours,
                )
        finally:
            await worker.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(prime(buildings[k::PRIME_WORKERS]) for k in range(PRIME_WORKERS)))
    times["allocation"] = time.perf_counter() - t0


@dataclass
class City:
    """The simulated city, written and primed, with the two hours still to upload."""

    sim: CitySim
    keys: dict[int, bytes]  # concentrator serial -> key
    warm_up: list[Chunk]  # the hour before the measured one
    hour: list[Chunk]  # the measured hour
    measured_hour: datetime
    readings: int  # in the measured hour
    warm_up_readings: int
    meters: int
    flats: int
    modules: int
    history_rows: int
    setup_s: float
    setup_parts: dict[str, float]  # city, simulate, copy, groups, allocation -> seconds


async def build_city(urls: StackUrls, buildings: int = BUILDINGS, hours_after: int = 0) -> City:
    """Write the city and ``HISTORY_H`` hours of history, primed (:func:`steady_state`);
    simulate the warm-up and the measured hour. ``hours_after``: the measured hour lies that
    many hours further back, so as many more hours (``sim.advance``) are still in the past."""
    vault = KeyVault()
    measured_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=1 + hours_after
    )
    start = measured_hour - timedelta(hours=HISTORY_H + 1)
    began = time.perf_counter()
    sim, _ = prepare(CityConfig(seed=11, buildings=buildings), start, HISTORY_H + 2)
    specs = [b.spec for b in sim.buildings]
    conn = await asyncpg.connect(urls.database_url)
    try:
        await write_city(conn, specs, vault, 11)
        keys = await concentrator_keys(conn, specs, vault)
        history_rows = 0
        times = {"city": time.perf_counter() - began, "simulate": 0.0, "copy": 0.0}
        for done in range(0, HISTORY_H, HISTORY_STEP_H):
            t0 = time.perf_counter()
            chunks = sim.advance(min(HISTORY_STEP_H, HISTORY_H - done))
            t1 = time.perf_counter()
            history_rows += await copy_chunks(conn, chunks)
            times["simulate"] += t1 - t0
            times["copy"] += time.perf_counter() - t1
        await steady_state(conn, urls.database_url, start, times)
        meters = await conn.fetchval("select count(*) from meters")
        modules = await conn.fetchval("select count(*) from radio_modules")
        flats = await conn.fetchval("select count(*) from flats")
    finally:
        await conn.close()
    warm_up = sim.advance(1)
    hour = sim.advance(1)
    return City(
        sim=sim,
        keys=keys,
        warm_up=warm_up,
        hour=hour,
        measured_hour=measured_hour,
        readings=sum(chunk.reading_count() for chunk in hour),
        warm_up_readings=sum(chunk.reading_count() for chunk in warm_up),
        meters=meters,
        flats=flats,
        modules=modules,
        history_rows=history_rows,
        setup_s=time.perf_counter() - began,
        setup_parts=times,
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


async def run_stages(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    services: dict[str, ServiceProcess],
    concentrators: list[SimConcentrator],
    chunks: list[Chunk],
) -> list[StageResult]:
    """Upload one hour with every service but ingest frozen, then thaw and drain the
    stages one at a time."""
    work_before = {n: counter_sum(services[n], WORK[n][0]) for n in CONSUMERS}
    reads_before = counter_by_label(services["balance"], WINDOW_READS, "read")
    analyses_before = counter_by_label(services["balance"], ANALYSES, "when")
    notes_before = counter_by_label(services["balance"], STORED_READINGS, "outcome")
    # allocation's and balance's own CPU for the hour: on a busy machine their wall-clock
    # time says more of the load than of the code (PostgreSQL's share is not in it)
    cpu_before = {n: counter_sum(services[n], CPU_SECONDS) for n in ("allocation", "balance")}
    batches_before = counter_sum(services["allocation"], BATCHES)
    compute_before = counter_sum(services["allocation"], COMPUTE)
    writes_before = [counter_sum(services["persister"], f"{WRITES}_{k}") for k in ("count", "sum")]
    for name in CONSUMERS:
        freeze(services[name])
    t0 = time.perf_counter()
    for concentrator, chunk in zip(concentrators, chunks, strict=True):
        await concentrator.send(chunk)
    await flush_all(concentrators, STAGE_TIMEOUT_S)
    results = [StageResult("ingest", time.perf_counter() - t0, work=f"{len(chunks)} uploads")]
    print("  ingest done", flush=True)
    for name, (stream, durable) in CONSUMERS.items():
        clock = await StageClock.start(js)
        if CHECKPOINT:
            await conn.execute("checkpoint")
        pg_before = await PgCost.take(conn)
        thaw(services[name])
        t0 = time.perf_counter()
        pending = outbox_counter(conn, OUTBOXES[name]) if name in OUTBOXES else None
        note = await drained(js, services[name], stream, durable, STAGE_TIMEOUT_S, pending)
        polled = time.perf_counter() - t0
        times = await timeline(js, stream, durable, clock)
        pg_cost = (await PgCost.take(conn)).since(pg_before)
        seconds = None if note else times.end
        if seconds is None and not note:
            note = "no acknowledgement recorded after the thaw"
        metric, unit = WORK[name]
        done = counter_sum(services[name], metric) - work_before[name]
        work = f"{done:,.0f} {unit}"
        if name == "balance":
            reads = counter_by_label(services[name], WINDOW_READS, "read")
            analyses = counter_by_label(services[name], ANALYSES, "when")
            notes = counter_by_label(services[name], STORED_READINGS, "outcome")
            for label, now, before in (
                ("windows read", reads, reads_before),
                ("detectors", analyses, analyses_before),
                ("stored readings", notes, notes_before),
            ):
                work += f"; {label}: " + ", ".join(
                    f"{n - before.get(how, 0):,.0f} {how}"
                    for how, n in sorted(now.items())
                    if n > before.get(how, 0)
                )
            cpu = counter_sum(services[name], CPU_SECONDS) - cpu_before[name]
            work += f"; process CPU {cpu:.2f} s ({cpu / max(done, 1):.3f} s a group)"
        if name == "persister":
            batches, writing = (
                counter_sum(services[name], f"{WRITES}_{k}") - before
                for k, before in zip(("count", "sum"), writes_before, strict=True)
            )
            work += f"; {batches:.0f} batches writing {writing:.3f} s"
        if name == "allocation":
            cpu = counter_sum(services[name], CPU_SECONDS) - cpu_before[name]
            batches = counter_sum(services[name], BATCHES) - batches_before
            computing = counter_sum(services[name], COMPUTE) - compute_before
            work += (
                f"; {batches:.0f} batch shares computing {computing:.2f} s"
                f" (summed over shares); process CPU {cpu:.2f} s"
            )
        work += f"; {times.describe()}; the poll saw it drained at +{polled:.2f} s"
        work += "\n    " + pg_cost.describe()
        results.append(StageResult(name, seconds, note, work, pg_cost.total()))
        print(f"  {name} done", flush=True)
    return results


async def run(urls: StackUrls, data_dir: Path) -> None:
    city = await build_city(urls, hours_after=MEASURED_HOURS - 1)
    hours = [city.hour] + [city.sim.advance(1) for _ in range(MEASURED_HOURS - 1)]
    print(
        f"city: {BUILDINGS} buildings, {city.flats} flats, {city.meters} meters, "
        f"{city.modules} modules; {city.history_rows} history rows ({HISTORY_H} h) written "
        f"directly; setup {city.setup_s:.1f} s, {city.setup_s / BUILDINGS:.2f} s a building ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in city.setup_parts.items())
        + ")"
    )
    readings = [sum(chunk.reading_count() for chunk in hour) for hour in hours]
    print(
        f"measured hour {city.measured_hour:%Y-%m-%d %H:00} UTC"
        + (f" and the {MEASURED_HOURS - 1} after it" if MEASURED_HOURS > 1 else "")
        + f": {', '.join(map(str, readings))} readings"
    )

    env = {
        "BALANS_INGEST_PORT": "0",
        "BALANS_INGEST_HOST": "127.0.0.1",
        # the stages are frozen on purpose: a lease expiring meanwhile would hand a stage's
        # partitions over (to itself) on thaw, dropping balance's kept windows
        "BALANS_PARTITION_LEASE_S": "3600",
    }
    supervisor = Supervisor(urls, data_dir, env)
    known = discover_services()
    services = {name: supervisor.start(name, known[name]) for name in CONSUMERS | {"ingest": 0}}
    nc = await nats.connect(urls.nats_url)
    try:
        late = await asyncio.to_thread(supervisor.wait_ready, STAGE_TIMEOUT_S)
        if late:
            raise RuntimeError(f"not ready: {late}")
        js = nc.jetstream()
        boot = next_boot(data_dir / "sim-boot-counter")
        conn = await asyncpg.connect(urls.database_url)
        try:
            async with connected_concentrators(
                city.sim, city.keys, "127.0.0.1", bound_port(services["ingest"]), boot
            ) as concentrators:
                print("warm-up hour (balance keeps no window yet):", flush=True)
                warm = await run_stages(js, conn, services, concentrators, city.warm_up)
                results = []
                for i, hour in enumerate(hours, start=1):
                    print(f"measured hour {i}:", flush=True)
                    results.append(await run_stages(js, conn, services, concentrators, hour))
            digests = [
                await allocation_digest(conn, city.measured_hour + i * timedelta(hours=1))
                for i in range(len(hours))
            ]
        finally:
            await conn.close()
        baseline = await baseline_copy_rows_per_s(urls.database_url, city.readings)
    finally:
        for service in services.values():
            thaw(service)
        await nc.close()
        await asyncio.to_thread(supervisor.stop)
    print(
        "warm-up hour: balance keeps no window yet and reads every one in full (a restarted "
        "process; every event did so before the kept windows)"
    )
    report(
        warm,
        city.warm_up_readings,
        city.meters,
        baseline,
        "  (warm-up hour, every window read in full)",
    )
    per_hour = []
    for i, (result, n, digest) in enumerate(zip(results, readings, digests, strict=True), 1):
        print(f"measured hour {i}: allocation's rows digest {digest}")
        suffix = f"  (measured hour {i})" if len(hours) > 1 else ""
        per_hour.append(report(result, n, city.meters, baseline, suffix))
    if len(hours) > 1:
        print(f"median of the {len(hours)} measured hours, stage by stage:")
        print_pg(
            {
                name: {
                    k: int(statistics.median(h[i].pg[k] for h in results if h[i].pg))
                    for k in PG_COUNTERS
                }
                for i, name in enumerate(r.name for r in results[0])
                if results[0][i].pg is not None
            }
        )
        print_scale({n: statistics.median(h[n] for h in per_hour) for n in per_hour[0]})


def report(
    results: list[StageResult], readings: int, meters: int, baseline: float, suffix: str = ""
) -> dict[str, float]:
    """Print one hour's stages and its ``scale`` line; return each stage's 2M-meter figure."""
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
            f"{extrapolated:>9,.0f}s{ratio}  {r.work}"
        )
    print("(2M meters: seconds one process of that stage needs for an hour of 2 000 000 meters)")
    per_2m = {
        r.name: TARGET_METERS / (meters / r.seconds) if r.seconds is not None else float("nan")
        for r in results
    }
    print_pg({r.name: r.pg for r in results if r.pg is not None}, suffix)
    print_scale(per_2m, suffix)
    return per_2m


def print_pg(costs: dict[str, dict[str, int]], suffix: str = "") -> None:
    """One line of what each stage's statements cost PostgreSQL: WAL MB, full-page images,
    8 kB pages read into shared buffers, dirtied and written out."""
    figures = " ".join(
        f"{name}_wal_mb={c['wal_bytes'] / 2**20:.1f} {name}_fpi={c['wal_fpi']}"
        f" {name}_read={c['shared_blks_read']} {name}_dirtied={c['shared_blks_dirtied']}"
        f" {name}_written={c['shared_blks_written']}"
        for name, c in costs.items()
    )
    print(f"pg {figures}{suffix}")


def print_scale(per_2m: dict[str, float], suffix: str = "") -> None:
    figures = " ".join(f"{name}_s={per_2m[name]:.0f}" for name in ("ingest", *CONSUMERS))
    print(f"scale {figures} total_2m_s={sum(per_2m.values()):.0f}{suffix}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        stack = DevStack(Path(tmp), durable=bench_durable())
        urls = stack.start()
        try:
            migrate.upgrade(urls.database_url)
            asyncio.run(enable_pg_cost(urls.database_url))
            asyncio.run(run(urls, Path(tmp)))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
