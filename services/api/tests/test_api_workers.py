"""The api as its own process with two workers (BALANS_API_WORKERS=2): both serve the one
port, the per-client login limit is one budget across them (kept in PostgreSQL), and
the service's /metrics counts the requests of both."""

from __future__ import annotations

import http.client
import os
import signal
from collections.abc import Iterator
from urllib.parse import urlencode

import psutil
import pytest

from balans_devstack.eventually import eventually
from balans_devstack.processes import free_port, service_process

from .conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="session")

LIMIT = 10


@pytest.fixture
def api(world: World, nats_url: str) -> Iterator[tuple[psutil.Process, int, int]]:
    """``python -m balans_api`` with two workers and a 10/minute login limit: the process,
    its HTTP port and its health port."""
    port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "BALANS_DATABASE_URL": world.database_url,
        "BALANS_NATS_URL": nats_url,
        "BALANS_API_PORT": str(port),
        "BALANS_HEALTH_PORT": str(health_port),
        "BALANS_API_WORKERS": "2",
        "BALANS_LOGIN_RATE": f"{LIMIT}/minute",
        "BALANS_DEMO_USERS": "false",
        # no kept answers: their durable consumers on the session's NATS are the pipeline's
        "BALANS_API_KEEP_MONTHS": "0",
    }
    with service_process("balans_api", env) as proc:
        yield psutil.Process(proc.pid), port, health_port


def _serving(process: psutil.Process) -> list[psutil.Process]:
    """The processes serving HTTP: the service and its spawned workers (not
    multiprocessing's resource tracker)."""
    children = [c for c in process.children() if "resource_tracker" not in " ".join(c.cmdline())]
    return [process, *children]


def _holder(workers: list[psutil.Process], local_port: int) -> int | None:
    """The pid of the worker holding the server side of our connection from local_port."""
    for worker in workers:
        for conn in worker.net_connections(kind="tcp"):
            if conn.raddr and conn.raddr.port == local_port:
                return worker.pid
    return None


def _login(conn: http.client.HTTPConnection, n: int) -> int:
    body = urlencode({"username": f"nobody-{n}", "password": "not-the-password"})
    conn.request(
        "POST",
        "/api/v1/auth/token",
        body,
        {"Content-Type": "application/x-www-form-urlencoded"},
    )
    response = conn.getresponse()
    response.read()
    return response.status


async def test_two_workers_share_the_port_the_login_limit_and_metrics(
    api: tuple[psutil.Process, int, int], world: World
) -> None:
    """Connections land on both workers; 10 failed logins spread over both use up the
    client's budget, so the 11th is refused by either worker (each process alone has
    seen only 5); /metrics counts the refusals and failures of both."""
    import asyncpg

    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute("delete from login_attempts")
    finally:
        await conn.close()
    process, port, health_port = api

    def up() -> bool:
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            probe.request("GET", "/api/v1/auth/me")
            probe.getresponse().read()
            probe.close()
        except OSError:
            return False
        return len(_serving(process)) == 2

    await eventually("the api and its second worker serve", up)
    workers = _serving(process)

    def connection_to(pid: int) -> http.client.HTTPConnection:
        """A fresh connection that the worker ``pid`` accepted (the kernel picks one)."""
        for _ in range(500):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/api/v1/auth/me")
            conn.getresponse().read()
            if _holder(workers, conn.sock.getsockname()[1]) == pid:
                return conn
            conn.close()
        raise AssertionError(f"no connection reached worker {pid}")

    def login_on(pid: int, n: int) -> int:
        conn = connection_to(pid)
        try:
            return _login(conn, n)
        finally:
            conn.close()

    pids = [w.pid for w in workers]
    statuses = [login_on(pids[n % 2], n) for n in range(LIMIT)]
    assert statuses == [401] * LIMIT
    assert [login_on(pid, LIMIT + i) for i, pid in enumerate(pids)] == [429, 429]

    scrape = http.client.HTTPConnection("127.0.0.1", health_port, timeout=10)
    scrape.request("GET", "/metrics")
    text = scrape.getresponse().read().decode()
    scrape.close()
    logins = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("balans_api_logins_total{")
    }
    assert logins == {"rejected": LIMIT, "limited": 2}


async def test_the_service_stops_its_workers(api: tuple[psutil.Process, int, int]) -> None:
    """SIGTERM to the service stops its worker too (none is left serving the port)."""
    process, _, _ = api
    await eventually("the second worker started", lambda: len(_serving(process)) == 2)
    worker = _serving(process)[1]
    process.send_signal(signal.SIGTERM)
    await eventually("the worker stopped", lambda: not worker.is_running(), timeout_s=40)
