"""A service started as a subprocess reports ready and exits 0 on SIGTERM and SIGINT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

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
    service: str, sig: signal.Signals, stack_urls: object, nats_url: str, database_url: str
) -> None:
    """Each service logs 'ready', serves /readyz, and exits 0 on the signal."""
    port = free_port()
    env = {
        **os.environ,
        "BALANS_DATABASE_URL": database_url,
        "BALANS_NATS_URL": nats_url,
        "BALANS_HEALTH_PORT": str(port),
        "BALANS_API_PORT": str(free_port()),
        "BALANS_INGEST_PORT": str(free_port()),
        "BALANS_LOG_FORMAT": "json",
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
