"""Restart children that died: servers and services alike, with backoff, logged and counted.

``balans run`` and ``balans stack`` call :meth:`Recovery.check` from their main thread
every half second (children must be spawned from that thread: see ``processes``). A check
reaps every dead child (so no zombie keeps a pid or a lock file), and restarts it once its
backoff has passed: 0.5 s after the first death, doubling up to 30 s while it keeps dying
within a minute of its restart.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from prometheus_client import Counter

log = structlog.get_logger("supervisor")

RESTARTS = Counter(
    "balans_supervisor_restarts_total", "Children restarted after they died", ["process"]
)
RESTART_FAILURES = Counter(
    "balans_supervisor_restart_failures_total", "Restarts of a dead child that failed", ["process"]
)


@dataclass(frozen=True)
class Backoff:
    """Wait ``first_s`` before the first restart, doubling up to ``max_s`` while the child
    dies again within ``stable_s`` of its restart."""

    first_s: float = 0.5
    max_s: float = 30.0
    stable_s: float = 60.0

    def delay(self, recent_deaths: int) -> float:
        return min(self.first_s * 2 ** max(recent_deaths - 1, 0), self.max_s)


@dataclass
class Watched:
    """One child: how to find its process and how to start it again."""

    name: str
    process: Callable[[], subprocess.Popen[bytes] | None]
    restart: Callable[[], None]
    started_at: float = 0.0
    recent_deaths: int = 0
    restart_at: float | None = None
    restarts: int = 0


class Recovery:
    """The children to keep alive, checked by :meth:`check`."""

    def __init__(self, backoff: Backoff | None = None) -> None:
        self.backoff = backoff or Backoff()
        self.watched: dict[str, Watched] = {}

    def watch(
        self,
        name: str,
        process: Callable[[], subprocess.Popen[bytes] | None],
        restart: Callable[[], None],
    ) -> None:
        self.watched[name] = Watched(name, process, restart, started_at=time.monotonic())

    def check(self) -> None:
        """Reap the dead, restart those whose backoff has passed."""
        now = time.monotonic()
        for child in self.watched.values():
            proc = child.process()
            if child.restart_at is None and proc is not None and proc.poll() is None:
                if now - child.started_at > self.backoff.stable_s:
                    child.recent_deaths = 0
                continue
            if child.restart_at is None:
                child.recent_deaths += 1
                delay = self.backoff.delay(child.recent_deaths)
                child.restart_at = now + delay
                log.warning(
                    "process died",
                    process=child.name,
                    exit_code=None if proc is None else proc.returncode,
                    restart_in_s=delay,
                )
            elif now >= child.restart_at:
                self._restart(child)

    def _restart(self, child: Watched) -> None:
        try:
            child.restart()
        except Exception as exc:  # a restart can fail for many reasons; try again later
            RESTART_FAILURES.labels(child.name).inc()
            child.recent_deaths += 1
            delay = self.backoff.delay(child.recent_deaths)
            child.restart_at = time.monotonic() + delay
            log.error("restart failed", process=child.name, error=str(exc), retry_in_s=delay)
            return
        child.restart_at = None
        child.started_at = time.monotonic()
        child.restarts += 1
        RESTARTS.labels(child.name).inc()
        log.info("process restarted", process=child.name, restarts=child.restarts)
