"""``make bench-scale-out``: the pipeline on a three-node NATS cluster (streams with three
replicas), one process per stage against two, and one NATS node killed during an upload.

The city and its primed history come from ``make bench-scale`` (``bench_scale.build_city``,
``BENCH_SCALE_BUILDINGS``; the history defaults to 96 hours here, enough for balance to judge
its groups, ``BENCH_SCALE_HISTORY_H`` to change it). Stages are isolated as there: every
process of the stages after ingest is frozen while the hour is uploaded, then each stage's
processes are thawed together, and once all its durable consumers (one per event partition
for allocation and balance) are drained and its outbox is empty, its time is taken from
JetStream's records: from the thaw to its last acknowledgement or announcement, as in
``make bench-scale``.

1. One process of persister, allocation and balance: a warm-up hour (balance reads every
   window in full), then the measured hour; then allocation's figure, a backlog of
   ``BENCH_SCALE_OUT_ALLOCATION_HOURS`` hours (default 6) stored while it is frozen and
   worked off at once (one hour of a few dozen buildings is a fraction of a second for
   allocation, mostly fixed costs no second process can share), after an untimed one of
   ``BENCH_SCALE_OUT_ALLOCATION_WARM_UP_HOURS`` (default 2; :func:`allocation_backlog`);
   ``BENCH_SCALE_OUT_ALLOCATION_REPEATS`` such backlogs (default 3), the figure being the
   median's.
2. A second process of each joins; the test waits until allocation's and balance's event
   partitions are split between the two as their groups intend (by the buildings' work,
   so both finish together: ``balans_core.partitions``). A warm-up hour (the newcomer
   reads the windows of the buildings it got), then the measured hour and allocation's
   backlog. The ratio is one process's seconds over two processes' seconds for the same
   amount of work.
3. With every process running, one more hour is uploaded and one of the three NATS nodes is
   SIGKILLed after half the concentrators have sent. When the pipeline has drained, the
   readings stored for that hour are compared with the simulator's ground truth, table by
   table: missing rows are lost, extra rows doubled.

The leases are set to 10 minutes (``BALANS_PARTITION_LEASE_S``): a frozen process must not
lose its partitions while an earlier stage runs. Balance analyses every event
(``BALANS_BALANCE_ANALYSIS_EVERY_HOURS=1``, see ``ENV``).

Every stage's CPU is measured too, from its thaw to its end: each of its processes', the
other services', PostgreSQL's (the postmaster and its backends), the three NATS nodes' and
the benchmark's own (its drain polls). On one machine they all share its cores, so two
processes' run cannot be shorter than its CPU seconds over the cores: ``<stage>_cpu_bound``
is one process's seconds over that, the highest ratio the machine allows. The CPU the idle
pipeline spends (fetchers waiting on every partition, lease rounds, the clusters' raft
heartbeats) and what the drain poll adds are printed before each measured hour. The last
line: ``scale-out allocation_1p_s= allocation_2p_s= allocation_ratio= allocation_cpu_bound=
balance_1p_s= balance_2p_s= balance_ratio= balance_cpu_bound=
node_kill_readings=<stored>/<truth> lost= doubled=``.

``BENCH_SCALE_OUT_PROCESS_CPUS=<fraction>`` is the limited run: each allocation and balance
process in a cgroup of its own capped at that fraction of a core (:mod:`cpu_limit`), the
servers and other services unlimited, as if each process had a host of its own and the
servers ran elsewhere; it says so first, and its last line carries ``process_cpus=``. It
shows how the work splits when the processes are the bottleneck, not this machine's
throughput.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import psutil
from nats.js.client import JetStreamContext

# the history bench_scale reads at import: 96 h unless set (its default is balance's window)
os.environ.setdefault("BENCH_SCALE_HISTORY_H", "96")

from bench_scale import (
    BATCHES,
    BUILDINGS,
    COMPUTE,
    CONSUMERS,
    HISTORY_H,
    JETSTREAM_AWAY,
    OUTBOXES,
    STAGE_TIMEOUT_S,
    TARGET_METERS,
    WORK,
    City,
    StageClock,
    bound_port,
    build_city,
    counter_sum,
    drained,
    enable_pg_cost,
    freeze,
    outbox_counter,
    stage_durables,
    thaw,
    timeline,
)
from cpu_limit import CpuLimitError, CpuQuota
from cpu_time import CpuMeter, CpuSnapshot, CpuUse, minor_faults

from balans_core.partitions import intended_holders, lease_holders, partition_durables
from balans_db import migrate
from balans_db.queries.ingest import READING_COLUMNS
from balans_devstack.nats_server import NatsCluster
from balans_devstack.stack import DevStack, StackUrls, bench_durable
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services
from balans_protocol.boot import next_boot
from balans_protocol.subjects import partition_of
from balans_sim.engine import Chunk, CitySim
from balans_sim.runner import connected_concentrators, flush_all

PARTITIONED = ("allocation", "balance")
POLL_S = 0.25
"""The drain poll's interval here: it says when to look, not when the stage ended (that is
JetStream's record, and the CPU is read at the sample after it), and each poll asks NATS for
every partition's consumer info (0.05-0.07 of a core of NATS every 0.1 s, from the cores
the stage runs on)."""
ENV = {
    "BALANS_INGEST_PORT": "0",
    "BALANS_INGEST_HOST": "127.0.0.1",
    "BALANS_NATS_STREAM_REPLICAS": "3",
    "BALANS_PARTITION_LEASE_S": "600",
    # balance analyses every event here: on its turn (one building in six an hour) an hour
    # of a few dozen buildings has too few analyses to split evenly between two processes,
    # and the ratio is about splitting the analyses (at 18 000 buildings, 3 000 an hour)
    "BALANS_BALANCE_ANALYSIS_EVERY_HOURS": "1",
}
PULSES, TEMPERATURES, STATUS, _EVENTS = READING_COLUMNS
#: each partitioned stage's process limited to this fraction of a core (:mod:`cpu_limit`);
#: unset: no limit
PROCESS_CPUS = os.environ.get("BENCH_SCALE_OUT_PROCESS_CPUS")
#: hours allocation's figures work off at once (:func:`allocation_backlog`)
ALLOCATION_HOURS = int(os.environ.get("BENCH_SCALE_OUT_ALLOCATION_HOURS", "6"))
#: hours of the untimed backlog before each measured one (:func:`allocation_backlog`)
ALLOCATION_WARM_UP_HOURS = int(os.environ.get("BENCH_SCALE_OUT_ALLOCATION_WARM_UP_HOURS", "2"))
#: measured backlogs a side, the median's the figure (:func:`allocation_backlog`)
ALLOCATION_REPEATS = int(os.environ.get("BENCH_SCALE_OUT_ALLOCATION_REPEATS", "3"))

Stages = dict[str, list[ServiceProcess]]


@dataclass(frozen=True)
class Measured:
    """One stage's run: seconds from its thaw to its last acknowledgement or announcement
    (None: not measured, ``note`` says why), and the CPU it and the servers spent."""

    seconds: float | None
    note: str
    cpu: CpuUse | None = None


def cpu_groups(stage: str, stages: Stages, servers: dict[str, list[int]]) -> dict[str, list[int]]:
    """Who spends CPU while ``stage`` runs: each of its processes, the other services (idle
    or frozen), the servers and the benchmark itself (polling NATS and PostgreSQL)."""
    groups = {proc.name: [proc.proc.pid] for proc in stages[stage]}
    groups["other services"] = [
        proc.proc.pid for name, procs in stages.items() if name != stage for proc in procs
    ]
    return {**groups, **servers, "benchmark": [os.getpid()]}


CPU_SAMPLE_S = 0.05
"""How often a stage's CPU is sampled: the stage's CPU is taken at the first sample after its
end (its last acknowledgement or announcement), not at the drain poll that noticed it."""


async def sample_cpu(meter: CpuMeter, samples: list[tuple[datetime, CpuSnapshot]]) -> None:
    """Append (when, snapshot) every :data:`CPU_SAMPLE_S` until cancelled."""
    while True:
        samples.append((datetime.now(UTC), meter.take()))
        await asyncio.sleep(CPU_SAMPLE_S)


def cpu_until(
    samples: list[tuple[datetime, CpuSnapshot]], end: datetime, meter: CpuMeter
) -> CpuSnapshot:
    """The first sample taken at or after ``end`` (a new one if none was)."""
    return next((snapshot for when, snapshot in samples if when >= end), None) or meter.take()


ANALYSED = re.compile(r"building analysed\s.*?\bbuilding_id=(\d+)\b.*?\bseconds=([\d.]+)")


def log_sizes(procs: list[ServiceProcess]) -> list[int]:
    return [p.log_file.stat().st_size for p in procs]


def analysis_seconds(procs: list[ServiceProcess], since: list[int]) -> dict[str, dict[int, float]]:
    """Process name -> building -> its analyses' seconds, from balance's "building analysed"
    log lines written after the log sizes ``since``."""
    found: dict[str, dict[int, float]] = {}
    for proc, offset in zip(procs, since, strict=True):
        with proc.log_file.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        mine = found.setdefault(proc.name, {})
        for building, seconds in ANALYSED.findall(text):
            mine[int(building)] = mine.get(int(building), 0.0) + float(seconds)
    return found


def describe_analyses(found: dict[str, dict[int, float]]) -> str:
    """Each process's analysing seconds, and each building's (id:ms)."""
    return "; ".join(
        f"{name} {sum(b.values()):.2f} s analysing ("
        + " ".join(f"{k}:{v * 1000:.0f}" for k, v in sorted(b.items()))
        + " ms)"
        for name, b in found.items()
    )


def backends(servers: dict[str, list[int]]) -> dict[int, psutil.Process]:
    """PostgreSQL's processes under its postmaster, by pid."""
    postmaster = psutil.Process(servers["postgres"][0])
    return {child.pid: child for child in postmaster.children()}


def describe_new_backends(
    before: dict[int, psutil.Process], after: dict[int, psutil.Process]
) -> str:
    """The PostgreSQL processes started during a stage (each a new connection): how many,
    and their CPU and minor faults so far (not in the stage's postgres figures, which
    count the processes that were there at its start)."""
    cpu, faults = 0.0, 0
    new = [process for pid, process in after.items() if pid not in before]
    for process in new:
        try:
            cpu += sum(process.cpu_times()[:2])
            faults += minor_faults(process, False)
        except psutil.NoSuchProcess:
            continue
    return f"new backends {len(new)} (CPU {cpu:.2f} s, minor faults {faults / 1000:.1f}k)"


STATEMENT_TIMES = """select coalesce(sum(calls), 0)::bigint, coalesce(sum(plans), 0)::bigint,
    coalesce(sum(total_exec_time), 0)::float8, coalesce(sum(total_plan_time), 0)::float8
    from pg_stat_statements where query not like '%pg_stat_statements%'"""


async def statement_times(conn: asyncpg.Connection) -> tuple[float, ...]:
    """pg_stat_statements' statements so far: calls, plans, executing and planning ms."""
    row = await conn.fetchrow(STATEMENT_TIMES)
    assert row is not None
    return tuple(row)


def describe_statements(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The statements run between two :func:`statement_times`."""
    calls, plans, exec_ms, plan_ms = (a - b for a, b in zip(after, before, strict=True))
    return (
        f"statements {calls:,.0f} ({plans:,.0f} planned): executing {exec_ms:.0f} ms,"
        f" planning {plan_ms:.0f} ms"
    )


STATEMENTS_BY_QUERY = r"""select queryid, left(regexp_replace(query, '\s+', ' ', 'g'), 100), calls,
    total_exec_time, total_plan_time, rows from pg_stat_statements
    where query not like '%pg_stat_%'"""

Statements = dict[int, tuple[str, float, float, float, float]]


async def statements_by_query(conn: asyncpg.Connection) -> Statements:
    """pg_stat_statements per statement so far: its text's start, calls, executing ms,
    planning ms, rows."""
    return {r[0]: tuple(r[1:]) for r in await conn.fetch(STATEMENTS_BY_QUERY)}


def describe_top_statements(before: Statements, after: Statements, top: int = 8) -> str:
    """The ``top`` statements by executing time between two :func:`statements_by_query`:
    executing and planning ms, calls, rows and the statement's start."""
    ran = []
    for key, (text, *now) in after.items():
        _, *then = before.get(key, (text, 0, 0.0, 0.0, 0))
        calls, ms, plan_ms, rows = (a - b for a, b in zip(now, then, strict=True))
        if calls:
            ran.append((ms, plan_ms, calls, rows, text))
    ran.sort(reverse=True)
    return "\n".join(
        f"        {ms:7.1f} + {plan:5.1f} ms {calls:4.0f} calls {rows:7.0f} rows  {text}"
        for ms, plan, calls, rows, text in ran[:top]
    )


WAITS = """select case when state = 'active' then coalesce(wait_event_type || ':' || wait_event,
    'running') else state end from pg_stat_activity where backend_type = 'client backend'
    and datname = current_database() and pid <> pg_backend_pid()
    and state in ('active', 'idle in transaction')"""
WAIT_SAMPLE_S = 0.02


async def sample_waits(watch: asyncpg.Connection, seen: Counter[str]) -> None:
    """Count what PostgreSQL's busy client backends are doing every :data:`WAIT_SAMPLE_S`
    (running, a wait event, or idle in a transaction: waiting for its client) until
    cancelled, on ``watch`` (a connection of its own: the drain poll uses the benchmark's)."""
    while True:
        seen.update(r[0] for r in await watch.fetch(WAITS))
        await asyncio.sleep(WAIT_SAMPLE_S)


def describe_waits(seen: Counter[str]) -> str:
    return "PostgreSQL backends sampled every {:.0f} ms: {}".format(
        WAIT_SAMPLE_S * 1000, ", ".join(f"{k} {n}" for k, n in seen.most_common())
    )


BATCH_LOGGED = re.compile(
    r"batch computed\s.*?\bbuildings=(\d+)\b.*?\bcpu_s=([\d.]+).*?\bevents=(\d+)"
)


def batch_sizes(procs: list[ServiceProcess], since: list[int]) -> str:
    """Each allocation process's batches from its "batch computed" log lines written after
    the log sizes ``since``: buildings (events) each, and their CPU seconds in all."""
    done = []
    for proc, offset in zip(procs, since, strict=True):
        with proc.log_file.open("rb") as log:
            log.seek(offset)
            found = BATCH_LOGGED.findall(log.read().decode(errors="replace"))
        sizes = " + ".join(f"{b} ({e})" for b, _, e in found)
        cpu = sum(float(c) for _, c, _ in found)
        done.append(f"{proc.name} {len(found)}: {sizes}, CPU {cpu:.3f} s")
    return "batches, buildings (events): " + "; ".join(done)


def batches(proc: ServiceProcess) -> tuple[float, float]:
    """Allocation's shares of batches so far (one transaction each) and their seconds."""
    return counter_sum(proc, BATCHES), counter_sum(proc, COMPUTE)


def describe_batches(procs: list[ServiceProcess], before: list[tuple[float, float]]) -> str:
    """Each allocation process's shares of batches since ``before`` and their seconds: a
    backlog cut into more batches pays their fixed statements more often."""
    done = []
    for proc, (shares, seconds) in zip(procs, before, strict=True):
        now_shares, now_seconds = batches(proc)
        done.append(f"{proc.name} {now_shares - shares:.0f} in {now_seconds - seconds:.2f} s")
    return "batch shares: " + ", ".join(done)


async def ends_by_process(
    js: JetStreamContext, stream: str, durable: str, clock: StageClock, procs: list[ServiceProcess]
) -> dict[str, float]:
    """Process name -> seconds from the thaw to its partitions' last acknowledgement: when
    each process of a partitioned stage finished its share."""
    holders = process_names(await lease_holders(js, durable), procs)
    infos = await asyncio.gather(
        *(js.consumer_info(stream, d) for d in partition_durables(durable))
    )
    ends: dict[str, float] = {}
    for partition, info in enumerate(infos):
        acked = info.ack_floor.last_active if info.ack_floor else None
        holder = holders.get(partition)
        if holder is None or acked is None or acked < clock.thawed:
            continue
        seconds = (acked - clock.thawed).total_seconds()
        ends[holder] = max(ends.get(holder, 0.0), seconds)
    return ends


async def run_hour(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    watch: asyncpg.Connection,
    stages: Stages,
    servers: dict[str, list[int]],
    concentrators: list,
    *hours: list[Chunk],
) -> dict[str, Measured]:
    """Upload one hour (or several, one after the other) with the stages frozen, then thaw
    and drain them one at a time; stage -> its :class:`Measured`. A stage's seconds run from
    its thaw to its last acknowledgement or announcement, as JetStream recorded them
    (bench_scale's :func:`timeline`); its CPU from the thaw to the first sample after that."""
    before = {n: [counter_sum(p, WORK[n][0]) for p in procs] for n, procs in stages.items()}
    batches_before = [batches(p) for p in stages["allocation"]]
    for procs in stages.values():
        for proc in procs:
            freeze(proc)
    t0 = time.perf_counter()
    for chunks in hours:
        for concentrator, chunk in zip(concentrators, chunks, strict=True):
            await concentrator.send(chunk)
        await flush_all(concentrators, STAGE_TIMEOUT_S)
    results = {"ingest": Measured(time.perf_counter() - t0, "")}
    for name, procs in stages.items():
        stream, durable = CONSUMERS[name]
        # the meter first: finding the servers' processes reads the whole machine's, which
        # must not count in the stage's time
        meter = CpuMeter(cpu_groups(name, stages, servers), alone=("benchmark",))
        backends_before = backends(servers)
        logs_before = log_sizes(procs)
        statements_before = await statement_times(conn)
        by_query = await statements_by_query(conn)
        waits: Counter[str] = Counter()
        watching = asyncio.create_task(sample_waits(watch, waits)) if name == "allocation" else None
        clock = await StageClock.start(js)
        cpu_before = meter.take()
        samples: list[tuple[datetime, CpuSnapshot]] = []
        sampling = asyncio.create_task(sample_cpu(meter, samples))
        for proc in procs:
            thaw(proc)
        pending = outbox_counter(conn, OUTBOXES[name]) if name in OUTBOXES else None
        try:
            note = await drained(js, procs[0], stream, durable, STAGE_TIMEOUT_S, pending, POLL_S)
        finally:
            sampling.cancel()
            if watching is not None:
                watching.cancel()
        times = await timeline(js, stream, durable, clock)
        seconds = None if note else times.end
        end = clock.thawed + timedelta(seconds=seconds or 0)
        cpu = cpu_until(samples, end, meter).since(cpu_before)
        if seconds is None and not note:
            note = "no acknowledgement recorded after the thaw"
        done = [counter_sum(p, WORK[name][0]) - b for p, b in zip(procs, before[name], strict=True)]
        work = " + ".join(f"{d:,.0f}" for d in done) + f" {WORK[name][1]}"
        results[name] = Measured(seconds, work if seconds is not None else note, cpu)
        print(f"    {name:<10} {seconds or float('nan'):8.2f} s  {results[name].note}", flush=True)
        print(f"      {times.describe()}; {cpu.describe()}", flush=True)
        print(
            f"      {cpu.describe_faults(*(p.name for p in procs), 'postgres')};"
            f" {describe_new_backends(backends_before, backends(servers))};"
            f" {describe_statements(statements_before, await statement_times(conn))}",
            flush=True,
        )
        if name == "balance":
            print(f"      {describe_analyses(analysis_seconds(procs, logs_before))}", flush=True)
        if name == "allocation":
            print(f"      {describe_batches(procs, batches_before)}", flush=True)
            print(f"      {batch_sizes(procs, logs_before)}", flush=True)
            print(f"      {describe_waits(waits)}", flush=True)
            top = describe_top_statements(by_query, await statements_by_query(conn))
            print(f"      top statements:\n{top}", flush=True)
        if name in PARTITIONED and len(procs) > 1:
            ends = await ends_by_process(js, stream, durable, clock, procs)
            print(
                "      last ack by process: "
                + ", ".join(f"{n} +{s:.3f} s" for n, s in sorted(ends.items())),
                flush=True,
            )
    return results


async def allocation_backlog(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    watch: asyncpg.Connection,
    stages: Stages,
    concentrators: list,
    sim: CitySim,
    servers: dict[str, list[int]],
) -> Measured:
    """Allocation's figure: :data:`ALLOCATION_HOURS` hours uploaded and stored while it is
    frozen, then worked off at once (seconds, work per process), :data:`ALLOCATION_REPEATS`
    times, the median run's (:func:`median_run`). One hour of a few dozen
    buildings takes allocation a fraction of a second, mostly NATS deliveries and the
    drain's polling, which a second process cannot share; a backlog of several hours is
    work that can. Balance then catches up, untimed (its figure is the hour's).

    An untimed backlog of :data:`ALLOCATION_WARM_UP_HOURS` hours comes first: a process's
    first batches of several hours a building pay once what hourly batches never did
    (statements prepared on its connections, the day rollups rebuilt rather than extended,
    kernels' other specialisations loaded): with two processes that fell on the newcomer
    alone, 0.42 s of CPU against the other's 0.24 s for the same flat-hours (40 buildings,
    each held to a quarter of a core), a first-day cost a process running for weeks does
    not have."""
    if ALLOCATION_WARM_UP_HOURS:
        print(f"    allocation backlog (warm-up): {ALLOCATION_WARM_UP_HOURS} hours", flush=True)
        warm_up = [sim.advance(1) for _ in range(ALLOCATION_WARM_UP_HOURS)]
        await run_hour(js, conn, watch, stages, servers, concentrators, *warm_up)
    runs = []
    for repeat in range(1, ALLOCATION_REPEATS + 1):
        print(f"    allocation backlog {repeat}: {ALLOCATION_HOURS} hours", flush=True)
        hours = [sim.advance(1) for _ in range(ALLOCATION_HOURS)]
        measured = await run_hour(js, conn, watch, stages, servers, concentrators, *hours)
        runs.append(measured["allocation"])
    return median_run(runs)


def median_run(runs: list[Measured]) -> Measured:
    """The run of median seconds (the lower of the two middle ones for an even count), with
    its own CPU; its note lists every run's seconds. On a shared machine one backlog's wall
    moves by half with the other work (the same code gave 1.2-4.4 s for two processes'
    6-hour backlog at 40 buildings in one sitting), and the median of a few is steadier."""
    timed = sorted((r for r in runs if r.seconds is not None), key=lambda r: r.seconds or 0.0)
    if not timed:
        return runs[0]
    middle = timed[(len(timed) - 1) // 2]
    seconds = ", ".join(f"{r.seconds:.2f}" for r in runs if r.seconds is not None)
    return Measured(middle.seconds, f"{middle.note}; backlogs {seconds} s", middle.cpu)


async def machinery_cpu(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    stages: Stages,
    servers: dict[str, list[int]],
    seconds: float = 3.0,
) -> None:
    """Print the CPU the pipeline spends with nothing to do (fetchers waiting on every
    partition, lease rounds), and what the drain poll adds to it during a stage (every
    partition's consumer info and the outbox every ``POLL_S``): both share the cores with
    the measured work."""
    groups = {
        "services": [p.proc.pid for procs in stages.values() for p in procs],
        **servers,
        "benchmark": [os.getpid()],
    }
    stream, durable = CONSUMERS["balance"]
    pending = outbox_counter(conn, OUTBOXES["balance"])

    durables = await stage_durables(js, stream, durable)

    async def poll() -> None:  # as bench_scale's drain polls: the consumers listed once
        await asyncio.gather(*(js.consumer_info(stream, d) for d in durables))
        await pending()

    meter = CpuMeter(groups, alone=("benchmark",))
    for what, work in (("idle", None), ("polling", poll)):
        before = meter.take()
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            if work is not None:
                await work()
            await asyncio.sleep(POLL_S)
        use = meter.take().since(before)
        rates = ", ".join(f"{name} {s / seconds:.3f}" for name, s in use.groups.items())
        print(f"  {what}: CPU s a second: {rates}; other work {use.other / seconds:.3f}")


def cpu_bound(name: str, one: Measured, two: Measured, processes: list[str]) -> float:
    """The highest ratio this machine's cores allow: two processes' run cannot be shorter
    than the CPU seconds it took (the stage's processes, the other services, PostgreSQL,
    NATS; not the benchmark's polls) over the cores, so one process's seconds over that
    (the tick-based CPU counts are good to a few hundredths of a second). Prints where the
    CPU went,
    and the bound of the split alone: with a core of its own for each process, two cannot
    be faster than the one with the larger share of the work (``processes``, their names)."""
    cores = psutil.cpu_count() or 1
    for count, measured in ((1, one), (2, two)):
        assert measured.cpu is not None
        assert measured.seconds is not None
        print(
            f"{name} {count}p: {measured.cpu.ours:.2f} CPU s in {measured.seconds:.2f} s"
            f" ({measured.cpu.ours / measured.seconds:.2f} of {cores} cores);"
            f" {measured.cpu.describe()}"
        )
    assert one.seconds is not None
    assert two.cpu is not None
    # the benchmark's own polls are left out: the bound is the pipeline's and its servers'
    system = two.cpu.ours - two.cpu.groups["benchmark"]
    bound = one.seconds / (system / cores)
    print(
        f"{name}: the ratio can be at most {one.seconds:.2f} / ({system:.2f} / {cores})"
        f" = {bound:.2f} on {cores} cores (the CPU of two processes' hour without the"
        " benchmark's)"
    )
    own = [two.cpu.groups[p] for p in processes]
    share = max(own) / sum(own)
    print(
        f"{name}: the processes' own CPU split {' / '.join(f'{s:.2f}' for s in own)} s:"
        f" with a core for each and the servers elsewhere, at most 1 / {share:.2f}"
        f" = {1 / share:.2f}"
    )
    return bound


async def leases(js: JetStreamContext, durable: str) -> dict[str, int]:
    """member -> how many partitions' leases it holds."""
    return dict(Counter((await lease_holders(js, durable)).values()))


BUILDING_WORK = """select b.id, (select count(*) from meters m where m.building_id = b.id),
    (select count(*) from balance_groups g where g.building_id = b.id) from buildings b"""


def process_names(holders: dict[int, str], procs: list[ServiceProcess]) -> dict[int, str]:
    """partition -> the name of the process holding it (a member id carries its pid)."""
    named = {
        member: p.name for member in holders.values() for p in procs if f"-{p.proc.pid}-" in member
    }
    return {partition: named.get(member, member) for partition, member in holders.items()}


async def describe_split(
    js: JetStreamContext, conn: asyncpg.Connection, durable: str, procs: list[ServiceProcess]
) -> str:
    """Each process's buildings, meters and balance groups (what the split weighed)."""
    holders = process_names(await lease_holders(js, durable), procs)
    shares: dict[str, list[int]] = {}
    for building, meters, groups in await conn.fetch(BUILDING_WORK):
        share = shares.setdefault(holders.get(partition_of(building), "none"), [0, 0, 0])
        for k, n in enumerate((1, meters, groups)):
            share[k] += n
    return "; ".join(
        f"{name}: buildings {b}, meters {m}, groups {g}"
        for name, (b, m, g) in sorted(shares.items())
    )


async def describe_buildings(conn: asyncpg.Connection) -> str:
    """Each building's meters, groups and group members (id:meters/groups/members)."""
    rows = await conn.fetch(
        BUILDING_WORK.replace(
            " from buildings b",
            ", (select count(*) from balance_group_members x join balance_groups g"
            " on g.id = x.group_id where g.building_id = b.id) from buildings b",
        )
    )
    return " ".join(f"{r[0]}:{r[1]}/{r[2]}/{r[3]}" for r in sorted(rows))


async def split_between(
    js: JetStreamContext, conn: asyncpg.Connection, stages: Stages, processes: int
) -> None:
    """Wait until allocation's and balance's partitions are held as their groups intend
    (by their buildings' weights) by ``processes`` processes each."""
    deadline = time.monotonic() + 120
    for stage in PARTITIONED:
        durable = CONSUMERS[stage][1]
        while True:
            try:
                held = await lease_holders(js, durable)
                intended = await intended_holders(js, durable)
            except JETSTREAM_AWAY:  # a loaded cluster answers late: ask again
                held, intended = {}, {0: ""}
            if held == intended and len(set(held.values())) == processes:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{stage}: partitions not split: {await leases(js, durable)}")
            await asyncio.sleep(0.2)
        print(
            f"  {stage}: partitions per process {sorted((await leases(js, durable)).values())}"
            f" ({await describe_split(js, conn, durable, stages[stage])})"
        )


def truth(chunks: list[Chunk]) -> dict[str, int]:
    """Rows per readings table the hour must leave (the simulator's ground truth)."""
    return {
        PULSES: int(sum(c.pulse_ok.sum() for c in chunks)),
        TEMPERATURES: int(sum(c.temp_ok.sum() for c in chunks)),
        STATUS: int(sum(c.status_ok.sum() for c in chunks)),
    }


async def stored(database_url: str, chunks: list[Chunk]) -> dict[str, int]:
    hours = sorted({datetime.fromtimestamp(int(t), tz=UTC) for c in chunks for t in c.ts_unix})
    conn = await asyncpg.connect(database_url)
    try:
        return {
            table: await conn.fetchval(f"select count(*) from {table} where ts = any($1)", hours)
            for table in (PULSES, TEMPERATURES, STATUS)
        }
    finally:
        await conn.close()


async def node_kill_hour(
    js: JetStreamContext,
    cluster: NatsCluster,
    stages: Stages,
    concentrators: list,
    chunks: list[Chunk],
) -> None:
    """Everything running; one NATS node killed halfway through the uploads."""
    t0 = time.perf_counter()
    half = len(chunks) // 2
    for i, (concentrator, chunk) in enumerate(zip(concentrators, chunks, strict=True)):
        if i == half:
            cluster.kill(0)
            print(f"    NATS node 1 killed after {half} of {len(chunks)} uploads", flush=True)
        await concentrator.send(chunk)
    await flush_all(concentrators, STAGE_TIMEOUT_S)
    print(f"    uploads ACKed in {time.perf_counter() - t0:.1f} s", flush=True)
    for name, procs in stages.items():
        stream, durable = CONSUMERS[name]
        note = await drained(js, procs[0], stream, durable, STAGE_TIMEOUT_S)
        if note:
            raise RuntimeError(f"{name} after the node was killed: {note}")


def start(
    supervisor: Supervisor, stage: str, name: str, module: str, quota: CpuQuota | None
) -> ServiceProcess:
    """Start one process of ``stage``; a partitioned stage's in its own CPU-limited group
    when the run is limited."""
    proc = supervisor.start(name, module)
    if quota is not None and stage in PARTITIONED:
        quota.limit(proc.proc.pid, name)
    return proc


async def run(
    urls: StackUrls,
    cluster: NatsCluster,
    servers: dict[str, list[int]],
    data_dir: Path,
    quota: CpuQuota | None,
) -> str:
    # then the two-process hours, the node-kill hour and two allocation backlogs (each with
    # its warm-up), all past
    city: City = await build_city(
        urls, hours_after=3 + 2 * (ALLOCATION_WARM_UP_HOURS + ALLOCATION_REPEATS * ALLOCATION_HOURS)
    )
    print(
        f"city: {BUILDINGS} buildings, {city.flats} flats, {city.meters} meters; "
        f"{HISTORY_H} h of history; setup {city.setup_s:.1f} s; NATS: 3 nodes, R3 streams"
    )
    supervisor = Supervisor(urls, data_dir, ENV)
    known = discover_services()
    ingest = supervisor.start("ingest", known["ingest"])
    stages: Stages = {
        name: [start(supervisor, name, name, known[name], quota)] for name in CONSUMERS
    }
    nc = await nats.connect(urls.nats_url.split(","))
    js = nc.jetstream(timeout=10)
    conn = await asyncpg.connect(urls.database_url)
    watch = await asyncpg.connect(urls.database_url)  # what PostgreSQL waits on, meanwhile
    figures: dict[str, float] = {}
    try:
        if late := await asyncio.to_thread(supervisor.wait_ready, STAGE_TIMEOUT_S):
            raise RuntimeError(f"not ready: {late}")
        await split_between(js, conn, stages, 1)
        boot = next_boot(data_dir / "sim-boot-counter")
        async with connected_concentrators(
            city.sim, city.keys, "127.0.0.1", bound_port(ingest), boot
        ) as concentrators:
            print("one process per stage: warm-up hour", flush=True)
            await run_hour(js, conn, watch, stages, servers, concentrators, city.warm_up)
            await machinery_cpu(js, conn, stages, servers)
            print("one process per stage: measured hour", flush=True)
            one = await run_hour(js, conn, watch, stages, servers, concentrators, city.hour)
            one["allocation"] = await allocation_backlog(
                js, conn, watch, stages, concentrators, city.sim, servers
            )

            for name in CONSUMERS:
                stages[name].append(start(supervisor, name, f"{name}-2", known[name], quota))
            if late := await asyncio.to_thread(supervisor.wait_ready, STAGE_TIMEOUT_S):
                raise RuntimeError(f"not ready: {late}")
            await split_between(js, conn, stages, 2)
            print(f"  buildings (id:meters/groups/members): {await describe_buildings(conn)}")
            print("two processes per stage: warm-up hour", flush=True)
            await run_hour(js, conn, watch, stages, servers, concentrators, city.sim.advance(1))
            await machinery_cpu(js, conn, stages, servers)
            print("two processes per stage: measured hour", flush=True)
            hour = city.sim.advance(1)
            two = await run_hour(js, conn, watch, stages, servers, concentrators, hour)
            two["allocation"] = await allocation_backlog(
                js, conn, watch, stages, concentrators, city.sim, servers
            )

            print("node kill: every process running", flush=True)
            kill_hour = city.sim.advance(1)
            await node_kill_hour(js, cluster, stages, concentrators, kill_hour)
        expected = truth(kill_hour)
        found = await stored(urls.database_url, kill_hour)
    finally:
        for procs in stages.values():
            for proc in procs:
                thaw(proc)
        await nc.close()
        await conn.close()
        await watch.close()
        await asyncio.to_thread(supervisor.stop)

    print(
        f"{'stage':<11} {'1 process':>10} {'2 processes':>12} {'ratio':>6}  2M meters, 2 processes"
    )
    for name in ("ingest", *CONSUMERS):
        s1, s2 = one[name].seconds, two[name].seconds
        if s1 is None or s2 is None:
            print(f"{name:<11} not measured: {one[name].note} / {two[name].note}")
            continue
        figures[f"{name}_1p_s"], figures[f"{name}_2p_s"] = s1, s2
        figures[f"{name}_ratio"] = s1 / s2
        hours = ALLOCATION_HOURS if name == "allocation" else 1  # its backlog's hours
        per_2m = TARGET_METERS / (city.meters / s2) / hours
        print(f"{name:<11} {s1:>9.2f}s {s2:>11.2f}s {s1 / s2:>6.2f}  {per_2m:,.0f} s")
    for name in PARTITIONED:
        if f"{name}_ratio" in figures:
            processes = [p.name for p in stages[name]]
            figures[f"{name}_cpu_bound"] = cpu_bound(name, one[name], two[name], processes)
    for table in expected:
        print(f"node kill: {table:<22} truth {expected[table]:>8,}  stored {found[table]:>8,}")
    lost = sum(max(expected[t] - found[t], 0) for t in expected)
    doubled = sum(max(found[t] - expected[t], 0) for t in expected)
    measured = " ".join(
        f"{stage}_{key}={figures[f'{stage}_{key}']:.2f}"
        for stage in PARTITIONED
        for key in ("1p_s", "2p_s", "ratio", "cpu_bound")
        if f"{stage}_{key}" in figures
    )
    limited = f"process_cpus={quota.cpus:.2f} " if quota is not None else ""
    return (
        f"scale-out {limited}{measured}"
        f" node_kill_readings={sum(found.values())}/{sum(expected.values())}"
        f" lost={lost} doubled={doubled}"
    )


async def track_statements(database_url: str) -> None:
    """pg_stat_statements' view, with planning times (each stage prints its statements')."""
    await enable_pg_cost(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("alter system set pg_stat_statements.track_planning = on")
        await conn.execute("select pg_reload_conf()")
    finally:
        await conn.close()


def cpu_quota() -> CpuQuota | None:
    """The limit of ``BENCH_SCALE_OUT_PROCESS_CPUS``, announced; None when unset. Exits
    with the reason when this machine cannot limit a process's CPU."""
    if PROCESS_CPUS is None:
        return None
    try:
        quota = CpuQuota(float(PROCESS_CPUS))
    except (CpuLimitError, ValueError) as error:
        raise SystemExit(f"BENCH_SCALE_OUT_PROCESS_CPUS={PROCESS_CPUS}: {error}") from error
    print(
        f"LIMITED RUN: each allocation and balance process at {quota.describe()}; PostgreSQL,"
        " NATS and the other services unlimited. As if each process had a host of its own"
        " and the servers ran elsewhere: the ratios show how the work splits, not this"
        " machine's throughput.",
        flush=True,
    )
    return quota


def main() -> None:
    quota = cpu_quota()
    with tempfile.TemporaryDirectory(prefix="bench_scale_out_") as tmp:
        stack = DevStack(Path(tmp), durable=bench_durable(), cluster=True)
        urls = stack.start()
        assert isinstance(stack.nats, NatsCluster)
        try:
            migrate.upgrade(urls.database_url)
            asyncio.run(track_statements(urls.database_url))
            assert stack.postgres is not None
            assert stack.postgres.proc is not None
            servers = {
                "postgres": [stack.postgres.proc.pid],
                "nats": [node.proc.pid for node in stack.nats.nodes if node.proc is not None],
            }
            last = asyncio.run(run(urls, stack.nats, servers, Path(tmp), quota))
        except BaseException:
            for log_file in sorted(Path(tmp).glob("*.log")):  # the services' last words
                print(f"--- {log_file.name}", *log_file.read_text().splitlines()[-15:], sep="\n")
            raise
        finally:
            stack.stop()
            if quota is not None:
                quota.remove()
    print(last)


if __name__ == "__main__":
    main()
