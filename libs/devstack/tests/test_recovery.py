"""Dead servers come back on the same ports and data; lock files are cleared only when safe."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import nats
import pytest
from prometheus_client import REGISTRY

from balans_devstack.postgres import EmbeddedPostgres
from balans_devstack.recovery import Backoff, Recovery
from balans_devstack.stack import DevStack


def _restarts(process: str) -> float:
    value = REGISTRY.get_sample_value("balans_supervisor_restarts_total", {"process": process})
    return value or 0.0


def _recover_until(recovery: Recovery, done: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recovery.check()
        if done():
            return
        time.sleep(0.2)
    raise AssertionError("not recovered in time")


async def _query(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url, timeout=2)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _answers(url: str, sql: str, expected: object) -> bool:
    try:
        return asyncio.run(_query(url, sql)) == expected
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def test_a_restarted_stack_keeps_its_ports(server_tmp_path: Path) -> None:
    """Stopped and started again in the same folder, the stack answers on the same URLs."""
    with DevStack(server_tmp_path, durable=False) as first:
        pass
    with DevStack(server_tmp_path, durable=False) as second:
        assert second == first
    assert (server_tmp_path / "ports.json").exists()


def test_killed_postgres_comes_back_on_its_port_with_its_data(server_tmp_path: Path) -> None:
    """SIGKILL of the postmaster (left a zombie until reaped): recovery reaps it, clears its
    lock files and starts it on the same port; the committed row is there."""
    stack = DevStack(server_tmp_path, durable=True)
    urls = stack.start()
    try:
        assert stack.postgres is not None
        assert stack.postgres.proc is not None
        asyncio.run(_query(urls.database_url, "create table kept as select 42 as answer"))
        recovery = Recovery(Backoff(first_s=0.1))
        stack.watch(recovery)
        before = _restarts("postgres")
        os.kill(stack.postgres.proc.pid, signal.SIGKILL)
        _recover_until(recovery, lambda: _answers(urls.database_url, "select answer from kept", 42))
        assert stack.urls == urls
        assert _restarts("postgres") == before + 1
    finally:
        stack.stop()


def test_killed_nats_comes_back_on_its_port_with_its_stream(server_tmp_path: Path) -> None:
    """SIGKILL of nats-server: it is restarted on the same port and the stream kept its message."""

    async def publish(url: str) -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().add_stream(name="KEPT", subjects=["kept.>"])
            await nc.jetstream().publish("kept.one", b"x")
        finally:
            await nc.close()

    async def count(url: str) -> int:
        nc = await nats.connect(url, allow_reconnect=False, connect_timeout=1)
        try:
            return (await nc.jetstream().stream_info("KEPT")).state.messages
        finally:
            await nc.close()

    def stored(url: str) -> bool:
        try:
            return asyncio.run(asyncio.wait_for(count(url), 3)) == 1
        except Exception:  # not up yet, in any of nats-py's ways
            return False

    stack = DevStack(server_tmp_path, durable=True)
    urls = stack.start()
    try:
        assert stack.nats is not None
        assert stack.nats.proc is not None
        asyncio.run(publish(urls.nats_url))
        recovery = Recovery(Backoff(first_s=0.1))
        stack.watch(recovery)
        os.kill(stack.nats.proc.pid, signal.SIGKILL)
        _recover_until(recovery, lambda: stored(urls.nats_url))
        assert stack.urls == urls
    finally:
        stack.stop()


def test_the_lock_of_a_running_postgres_is_kept(server_tmp_path: Path) -> None:
    """A second server on the same data folder is refused and the first one's lock stays."""
    stack = DevStack(server_tmp_path, durable=False, nats_url="nats://unused:4222")
    stack.start()
    try:
        lock = server_tmp_path / "pgdata" / "postmaster.pid"
        before = lock.read_text()
        with pytest.raises(RuntimeError, match="still run"):
            EmbeddedPostgres(server_tmp_path, durable=False).start()
        assert lock.read_text() == before
    finally:
        stack.stop()


def test_a_lock_naming_another_live_process_is_cleared(server_tmp_path: Path) -> None:
    """postmaster.pid left by a killed server whose pid now belongs to another process (or
    to a zombie): PostgreSQL alone would refuse to start; the stack clears it and starts."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        stack = DevStack(server_tmp_path, durable=False, nats_url="nats://unused:4222")
        stack.start()
        stack.stop()
        lock = server_tmp_path / "pgdata" / "postmaster.pid"
        lock.write_text(f"{stranger.pid}\n{server_tmp_path / 'pgdata'}\n")
        stack.start()
        try:
            assert int(lock.read_text().split()[0]) != stranger.pid
        finally:
            stack.stop()
    finally:
        stranger.kill()
        stranger.wait()


def test_backoff_doubles_while_a_child_keeps_dying() -> None:
    """0.5 s after a first death, then 1, 2, 4 ... s, never more than the ceiling."""
    backoff = Backoff(first_s=0.5, max_s=30.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert backoff.delay(12) == 30.0
