"""Servers die with the process that started them, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

SCRIPT = """
import sys, time
from balans_devstack.stack import DevStack
stack = DevStack(sys.argv[1], durable=False)
stack.start()
print("PIDS", stack.postgres.proc.pid, stack.nats.proc.pid, flush=True)
time.sleep(600)
"""


def test_sigkilled_parent_leaves_no_servers(server_tmp_path: Path) -> None:
    """After the parent is SIGKILLed, postgres and nats-server exit by themselves."""
    parent = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(server_tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = ""
    while not line.startswith("PIDS"):
        line = parent.stdout.readline()
        assert line, "the parent exited before starting the servers"
    pg_pid, nats_pid = (int(x) for x in line.split()[1:])
    assert psutil.pid_exists(pg_pid)
    assert psutil.pid_exists(nats_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 20
    alive = {pg_pid, nats_pid}
    while alive and time.monotonic() < deadline:
        alive = {
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        }
        time.sleep(0.2)
    assert alive == set()
