"""The embedded stack starts, answers, and leaves nothing behind."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import nats
import psutil

from balans_devstack.processes import port_open
from balans_devstack.stack import DevStack


def _tree(pid: int) -> set[int]:
    """A process and all its descendants (postgres forks its backends and workers)."""
    root = psutil.Process(pid)
    return {pid} | {child.pid for child in root.children(recursive=True)}


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if _running(pid)}


async def _use(database_url: str, nats_url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(database_url)
    try:
        answer = await conn.fetchval("select 40 + 2")
    finally:
        await conn.close()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="SMOKE", subjects=["smoke.>"])
        ack = await js.publish("smoke.test", b"hello")
    finally:
        await nc.close()
    return answer, ack.seq


def test_stack_starts_serves_and_stops_twice(server_tmp_path: Path) -> None:
    """Two start/use/stop cycles in one process leave no server process and no open port."""
    for round_no in range(2):
        stack = DevStack(server_tmp_path / f"round{round_no}", durable=False)
        urls = stack.start()
        assert stack.postgres is not None
        assert stack.nats is not None
        ports = [stack.postgres.port, stack.nats.port, stack.nats.monitor_port]
        answer, seq = asyncio.run(_use(urls.database_url, urls.nats_url))
        assert answer == 42
        assert seq == 1
        assert stack.postgres.proc is not None
        assert stack.nats.proc is not None
        started = _tree(stack.postgres.proc.pid) | _tree(stack.nats.proc.pid)
        assert len(started) > 2  # postgres runs background workers
        stack.stop()
        assert _alive(started) == set()
        assert not any(port_open("127.0.0.1", port) for port in ports)


def test_settings_urls_bypass_embedded_servers(server_tmp_path: Path) -> None:
    """With both URLs given, the stack starts nothing and hands those URLs back."""
    stack = DevStack(
        server_tmp_path, database_url="postgresql://x@db:5432/b", nats_url="nats://n:4222"
    )
    urls = stack.start()
    assert stack.postgres is None
    assert stack.nats is None
    assert urls.env() == {
        "BALANS_DATABASE_URL": "postgresql://x@db:5432/b",
        "BALANS_NATS_URL": "nats://n:4222",
    }
    stack.stop()
