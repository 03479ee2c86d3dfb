"""Start every balans service as a child process and stop them all together.

Services announce themselves through the entry-point group ``balans.services``
(name -> module run with ``python -m``). Each child gets the stack's URLs and its own
health port, and is ready when its ``/readyz`` answers 200. With a :class:`Recovery`
watching them, a service that dies is started again with the same settings and port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from balans_devstack.ports import PortBook
from balans_devstack.processes import free_port, spawn, stop_process
from balans_devstack.recovery import Recovery
from balans_devstack.stack import StackUrls


@dataclass
class ServiceProcess:
    name: str
    module: str
    health_port: int
    proc: subprocess.Popen[bytes]
    log_file: Path
    env: dict[str, str]

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(json.load(response).get("ready"))
        except (OSError, ValueError):  # URLError is an OSError
            return False

    def restart(self) -> None:
        stop_process(self.proc, signal.SIGKILL, timeout=10)  # reaps it
        self.proc = _spawn_service(self.module, self.log_file, self.env)


def _spawn_service(module: str, log_file: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``python -m module``, dying with us: the parent's death is a crash, and every stage
    is idempotent, so SIGKILL loses nothing."""
    argv = [sys.executable, "-m", module]
    return spawn(argv, log_file=log_file, env=env, death_signal=signal.SIGKILL)


def discover_services() -> dict[str, str]:
    """name -> module of every installed balans service."""
    return {ep.name: ep.module for ep in entry_points(group="balans.services")}


class Supervisor:
    """Runs the chosen services against one stack; stops them in reverse order.

    ``ports`` keeps each service's health port across runs (``balans run``); without it
    every start picks a free port."""

    def __init__(
        self,
        urls: StackUrls,
        log_dir: Path,
        extra_env: dict[str, str],
        ports: PortBook | None = None,
    ) -> None:
        self.urls = urls
        self.log_dir = log_dir
        self.extra_env = extra_env
        self.ports = ports
        self.services: list[ServiceProcess] = []

    def start(self, name: str, module: str) -> ServiceProcess:
        port = self.ports.port(f"health_{name}") if self.ports else free_port()
        env = {**os.environ, **self.urls.env(), **self.extra_env, "BALANS_HEALTH_PORT": str(port)}
        log_file = self.log_dir / f"{name}.log"
        proc = _spawn_service(module, log_file, env)
        service = ServiceProcess(name, module, port, proc, log_file, env)
        self.services.append(service)
        return service

    def watch(self, recovery: Recovery) -> None:
        """Have ``recovery`` restart any of the started services that dies."""
        for service in self.services:
            recovery.watch(service.name, lambda s=service: s.proc, service.restart)

    def wait_ready(self, timeout: float) -> list[str]:
        """Wait until every service is ready; return the names of those that are not."""
        deadline = time.monotonic() + timeout
        pending = list(self.services)
        while pending and time.monotonic() < deadline:
            for service in list(pending):
                if service.proc.poll() is not None:
                    raise RuntimeError(
                        f"service {service.name} exited with {service.proc.returncode}; "
                        f"see {service.log_file}"
                    )
                if service.ready():
                    pending.remove(service)
            time.sleep(0.2)
        return [s.name for s in pending]

    def exited(self) -> list[ServiceProcess]:
        return [s for s in self.services if s.proc.poll() is not None]

    def stop(self) -> None:
        for service in reversed(self.services):
            stop_process(service.proc, signal.SIGTERM, timeout=30)
        self.services.clear()
