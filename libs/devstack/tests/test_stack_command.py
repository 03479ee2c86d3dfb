"""`balans stack`: a killed PostgreSQL comes back by itself, and a new `balans stack` in the
same folder prints the same URLs."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import psutil

BALANS = Path(sys.executable).with_name("balans")
EXPORT = re.compile(r"^export (BALANS_\w+)=(\S+)$", re.M)


def _start(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, str]]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("BALANS_DATABASE_URL", "BALANS_NATS_URL")
    }
    out = data_dir.parent / f"{data_dir.name}.out"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [str(BALANS), "stack", "--data-dir", str(data_dir)],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 120
    while len(exports := dict(EXPORT.findall(out.read_text()))) < 2:
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, "no export lines"
        time.sleep(0.2)
    return proc, exports


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0


def _answers(url: str) -> bool:
    async def query() -> object:
        conn = await asyncpg.connect(url, timeout=2)
        try:
            return await conn.fetchval("select 1")
        finally:
            await conn.close()

    try:
        return asyncio.run(query()) == 1
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False


def test_stack_command_restarts_postgres_and_keeps_its_urls(server_tmp_path: Path) -> None:
    data_dir = server_tmp_path / "stack"
    proc, exports = _start(data_dir)
    try:
        url = exports["BALANS_DATABASE_URL"]
        assert _answers(url)
        postmaster = next(p for p in psutil.Process(proc.pid).children() if p.name() == "postgres")
        postmaster.kill()  # not reaped by us: only `balans stack` can
        deadline = time.monotonic() + 120
        while not _answers(url):
            assert time.monotonic() < deadline, "postgres did not come back"
            time.sleep(0.5)
        assert postmaster.pid not in {p.pid for p in psutil.Process(proc.pid).children()}
    finally:
        _stop(proc)
    proc, again = _start(data_dir)
    try:
        assert again == exports
    finally:
        _stop(proc)
