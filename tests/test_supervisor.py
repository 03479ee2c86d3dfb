"""`balans run` keeps the system alive and takes it down with it.

One `balans run` (every service, embedded PostgreSQL and NATS, Prometheus when installed)
runs for the module. PostgreSQL, NATS and every service are SIGKILLed in turn: each comes
back by itself and the system serves again (every /readyz, a query, the API). Then
`balans run` itself is SIGKILLed (the module's last test): no process it started may
survive it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import nats
import psutil
import pytest

from balans_db import migrate
from balans_devstack.processes import free_port
from balans_devstack.pytest_plugin import server_folder
from balans_devstack.stack import DevStack
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services

ROOT = Path(__file__).resolve().parents[1]
BALANS = Path(sys.executable).with_name("balans")
START_TIMEOUT_S = 400  # every service on a shared 2-core machine
RECOVERY_TIMEOUT_S = 300
READY = re.compile(r"^ready: (\S+)\s+health http://127\.0\.0\.1:(\d+)$", re.M)
DATABASE = re.compile(r"^PostgreSQL (\S+)$", re.M)
NATS = re.compile(r"^NATS\s+(\S+)$", re.M)
SERVICES = discover_services()


@dataclass
class RunningSystem:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    output: Path
    api_port: int
    health_ports: dict[str, int]
    database_url: str = ""
    nats_url: str = ""
    token: str = ""


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _wait_for_output(system: RunningSystem, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = system.output.read_text(errors="replace")
        if re.search(pattern, text, re.M):
            return text
        assert system.proc.poll() is None, f"balans run exited: {text[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} from balans run in {timeout} s")


@pytest.fixture(scope="module")
def system() -> Iterator[RunningSystem]:
    """`balans run` with every service, on its own data folder and ports."""
    with server_folder("run") as data_dir:
        yield from _run_balans(data_dir)


def _run_balans(data_dir: Path) -> Iterator[RunningSystem]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("BALANS_DATABASE_URL", "BALANS_NATS_URL")
    }
    ingest_port = str(free_port())
    api_port = free_port()
    epoch = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    env |= {
        "BALANS_API_PORT": str(api_port),
        "BALANS_INGEST_PORT": ingest_port,
        "BALANS_SIM_INGEST_PORT": ingest_port,
        # history is not what is tested here: one day of backfill from a recent epoch (the
        # default, 2025, costs every start of the simulator a replay of a year and more)
        "BALANS_SIM_EPOCH": epoch.isoformat(),
        "BALANS_SIM_BACKFILL_DAYS": "1",
        "BALANS_SIM_GROUND_TRUTH": str(data_dir / "ground_truth.jsonl"),
        "BALANS_SIM_BOOT_FILE": str(data_dir / "sim-boot-counter"),
    }
    output = data_dir / "balans-run.out"
    with output.open("wb") as out:
        proc = subprocess.Popen(
            [str(BALANS), "run", "--data-dir", str(data_dir)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    system = RunningSystem(proc, data_dir, output, api_port, {})
    try:
        text = _wait_for_output(system, r"^portal: ", START_TIMEOUT_S)
        system.health_ports = {name: int(port) for name, port in READY.findall(text)}
        match = DATABASE.search(text)
        assert match is not None
        system.database_url = match.group(1)
        match = NATS.search(text)
        assert match is not None
        system.nats_url = match.group(1)
        system.token = _login(api_port)
        yield system
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _login(api_port: int) -> str:
    form = urllib.parse.urlencode({"username": "operator", "password": "operator-demo"})
    url = f"http://127.0.0.1:{api_port}/api/v1/auth/token"
    with urllib.request.urlopen(url, data=form.encode(), timeout=10) as response:
        return str(json.load(response)["access_token"])


def _child(system: RunningSystem, target: str) -> psutil.Process | None:
    """The running process of ``target`` (postgres, nats or a service) under `balans run`."""
    for process in psutil.Process(system.proc.pid).children():
        try:
            name, argv = process.name(), process.cmdline()
        except psutil.NoSuchProcess:
            continue
        if not _running(process):
            continue
        if (target, name) in (("postgres", "postgres"), ("nats", "nats-server")):
            return process
        if argv[-2:] == ["-m", SERVICES.get(target, "")]:
            return process
    return None


async def _count_buildings(database_url: str) -> int:
    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        return int(await conn.fetchval("select count(*) from buildings"))
    finally:
        await conn.close()


async def _uploads_stream_subjects(nats_url: str) -> list[str]:
    nc = await nats.connect(nats_url, allow_reconnect=False, connect_timeout=2)
    try:
        return list((await nc.jetstream().stream_info("UPLOADS")).config.subjects or [])
    finally:
        await nc.close()


def _problems(system: RunningSystem) -> list[str]:
    """What keeps the system from serving: services not ready, no query, no API answer."""
    problems = []
    for name, port in system.health_ports.items():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if not json.load(r)["ready"]:
                    problems.append(f"{name} not ready")
        except OSError as exc:
            problems.append(f"{name}: {exc}")
    try:
        if asyncio.run(_count_buildings(system.database_url)) == 0:
            problems.append("no buildings")
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        problems.append(f"database: {exc!r}")
    try:
        if not asyncio.run(asyncio.wait_for(_uploads_stream_subjects(system.nats_url), 5)):
            problems.append("UPLOADS stream has no subjects")
    except Exception as exc:  # nats-py fails in many ways while the server is down
        problems.append(f"jetstream: {exc!r}")
    request = urllib.request.Request(
        f"http://127.0.0.1:{system.api_port}/api/v1/concentrators",
        headers={"Authorization": f"Bearer {system.token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            if not json.load(r)["items"]:
                problems.append("api lists no concentrators")
    except (OSError, ValueError, KeyError) as exc:
        problems.append(f"api: {exc!r}")
    return problems


def _wait_serving(system: RunningSystem, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while problems := _problems(system):
        assert time.monotonic() < deadline, problems
        time.sleep(0.5)


@pytest.mark.parametrize("target", ["postgres", "nats", *sorted(SERVICES)])
def test_a_killed_child_comes_back_and_the_system_serves(
    system: RunningSystem, target: str
) -> None:
    """SIGKILL one server or service: `balans run` restarts it (a new process, logged) and
    every service, the database and the API answer again, without a hand."""
    old = _child(system, target)
    assert old is not None, f"{target} is not running"
    _wait_serving(system, RECOVERY_TIMEOUT_S)  # also after the previous kill
    restarts_before = system.output.read_text().count(f"process={target} restarts=")
    old.kill()
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        new = _child(system, target)
        if new is None or new.pid == old.pid:
            problems = [f"{target} not restarted"]
        elif system.output.read_text().count(f"process={target} restarts=") <= restarts_before:
            problems = [f"{target}'s restart not logged"]
        else:
            problems = _problems(system)
        if not problems:
            break
        assert time.monotonic() < deadline, problems
        time.sleep(0.5)


def test_a_service_stops_on_sigterm_when_its_servers_are_gone(server_tmp_path: Path) -> None:
    """With NATS and PostgreSQL gone, the persister (which retries both forever) still
    exits on SIGTERM within the grace the supervisor gives it."""
    stack = DevStack(server_tmp_path, durable=False)
    urls = stack.start()
    migrate.upgrade(urls.database_url)
    supervisor = Supervisor(urls, server_tmp_path, {})
    try:
        service: ServiceProcess = supervisor.start("persister", discover_services()["persister"])
        assert not supervisor.wait_ready(120)
        log = service.log_file.read_text
        errors = log().count("nats error")
        stack.stop()
        deadline = time.monotonic() + 30
        while log().count("nats error") == errors:  # until it retries NATS, its servers gone
            assert time.monotonic() < deadline, f"no retry logged: {log()[-2000:]}"
            time.sleep(0.2)
        assert service.proc.poll() is None
        service.proc.send_signal(signal.SIGTERM)
        service.proc.wait(30)  # raises TimeoutExpired if SIGTERM is ignored
    finally:
        supervisor.stop()
        stack.stop()


def test_sigkill_of_balans_run_leaves_no_process(system: RunningSystem) -> None:
    """Every child and grandchild of `balans run` is gone within 10 s of its SIGKILL."""
    _wait_serving(system, RECOVERY_TIMEOUT_S)
    tree = _descendants(system.proc.pid)
    commands = [" ".join(p.cmdline()) for p in tree if _running(p)]
    for module in discover_services().values():
        assert any(f"-m {module}" in c for c in commands), f"{module} not running: {commands}"
    assert any(p.name() == "postgres" for p in tree)
    assert any(p.name() == "nats-server" for p in tree)
    os.kill(system.proc.pid, signal.SIGKILL)
    system.proc.wait()
    deadline = time.monotonic() + 10
    alive = tree
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.2)
    assert [(p.pid, p.name()) for p in alive] == []
