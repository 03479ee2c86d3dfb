"""A service started as a subprocess reports ready and exits 0 on SIGTERM and SIGINT; a
service loop that fails stops the others and is raised."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from balans_core.service import ServiceContext
from balans_core.settings import CommonSettings
from balans_devstack.processes import free_port
from balans_devstack.supervisor import discover_services


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "service exited before it was ready"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if json.load(r)["ready"]:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("service not ready in time")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("service", sorted(discover_services()))
def test_service_ready_then_clean_exit(
    service: str,
    sig: signal.Signals,
    stack_urls: object,
    nats_url: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Each service logs 'ready', serves /readyz, and exits 0 on the signal."""
    port = free_port()
    epoch = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    env = {
        **os.environ,
        "BALANS_DATABASE_URL": database_url,
        "BALANS_NATS_URL": nats_url,
        "BALANS_HEALTH_PORT": str(port),
        "BALANS_API_PORT": str(free_port()),
        "BALANS_INGEST_PORT": str(free_port()),
        "BALANS_LOG_FORMAT": "json",
        # the simulator's history is not what is tested here: a recent epoch and one day of
        # backfill spare it the replay from 2025 and 35 days of rows (half its start's
        # CPU); nor may it write into the working tree's .balans
        "BALANS_SIM_EPOCH": epoch.isoformat(),
        "BALANS_SIM_BACKFILL_DAYS": "1",
        "BALANS_SIM_GROUND_TRUTH": str(tmp_path / "ground_truth.jsonl"),
        "BALANS_SIM_BOOT_FILE": str(tmp_path / "sim-boot-counter"),
    }
    module = discover_services()[service]
    proc = subprocess.Popen(
        [sys.executable, "-m", module], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    try:
        _wait_ready(port, proc)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()[-2000:]
    lines = err.decode().splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert "ready" in events
    assert events[-1] == "stopped"


async def test_a_failing_loop_stops_the_others_and_is_raised() -> None:
    """run_until_stopped: one loop fails, the others see ``stopping`` and finish what they
    hold, then the failure reaches the caller (the process exits 1, its supervisor
    restarts it)."""
    ctx = ServiceContext(name="t", settings=CommonSettings())
    finished: list[str] = []

    async def steady() -> None:
        await ctx.stopping.wait()
        finished.append("steady")

    async def broken() -> None:
        raise RuntimeError("lost the database for good")

    with pytest.raises(RuntimeError, match="lost the database"):
        await ctx.run_until_stopped(steady(), broken())
    assert ctx.stopping.is_set()
    assert finished == ["steady"]
