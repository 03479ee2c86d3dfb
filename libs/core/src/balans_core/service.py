"""Lifecycle of a balans service process: start, report ready, stop cleanly on a signal.

A service supplies an async ``main(ctx)`` that sets up its work, calls ``ctx.set_ready()``,
then waits for ``ctx.stopping`` and drains. SIGTERM and SIGINT set ``ctx.stopping``; the
process exits 0 after ``main`` returns, or 1 if it raised.

A stop signal is always honoured: a drain that cannot finish (NATS or PostgreSQL gone, a
retry loop waiting for them) is cut after :data:`STOP_GRACE_S` by a timer thread, which
works even if the event loop is blocked, and a second signal exits at once. Both exit 1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import structlog

from balans_core.health import HealthServer
from balans_core.logging import configure_logging
from balans_core.settings import CommonSettings


@dataclass
class ServiceContext:
    """What a running service's ``main`` receives."""

    name: str
    settings: CommonSettings
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    ready: bool = False
    health_port: int = 0

    def set_ready(self, **info: object) -> None:
        """Mark the service ready and log the line supervisors wait for."""
        self.ready = True
        structlog.get_logger(self.name).info(
            "ready", service=self.name, health_port=self.health_port, **info
        )

    async def run_until_stopped(self, *loops: Coroutine[Any, Any, None]) -> None:
        """Run the service's loops (each returns once ``stopping`` is set) to the end. A loop
        that fails sets ``stopping`` so the others finish what they hold, then its error is
        raised: the process exits 1 and its supervisor restarts it."""
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            await asyncio.gather(*tasks)
        except Exception:
            self.stopping.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise


ServiceMain = Callable[[ServiceContext], Awaitable[None]]

STOP_GRACE_S = 20.0  # below the 30 s supervisors and compose wait before SIGKILL


def _exit_now(name: str, reason: str) -> None:
    structlog.get_logger(name).error("exiting without a clean stop", service=name, reason=reason)
    os._exit(1)


def _stop_requester(ctx: ServiceContext) -> Callable[[], None]:
    """The signal handler: first signal starts the drain and its deadline, second exits."""

    signalled = threading.Event()

    def request_stop() -> None:
        if signalled.is_set():
            _exit_now(ctx.name, "second stop signal")
        signalled.set()
        ctx.stopping.set()
        timer = threading.Timer(
            STOP_GRACE_S, _exit_now, (ctx.name, f"stop took longer than {STOP_GRACE_S} s")
        )
        timer.daemon = True
        timer.start()

    return request_stop


async def serve(name: str, settings: CommonSettings, main: ServiceMain) -> None:
    """Run ``main`` with signal handling and the health server."""
    ctx = ServiceContext(name=name, settings=settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop_requester(ctx))
    health = HealthServer(name, settings.health_host, settings.health_port, lambda: ctx.ready)
    ctx.health_port = health.port
    health.start()
    try:
        await main(ctx)
    finally:
        ctx.ready = False
        await health.stop()
        structlog.get_logger(name).info("stopped", service=name)


def run_service(name: str, settings: CommonSettings, main: ServiceMain) -> None:
    """Entry point helper: configure logging, run the loop (uvloop when present), exit."""
    configure_logging(settings.log_format, settings.log_level)
    log = structlog.get_logger(name)
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every OS
        runner = asyncio.run
    try:
        runner(serve(name, settings, main))
    except Exception:
        log.exception("service failed", service=name)
        sys.exit(1)


async def idle_until_stopped(ctx: ServiceContext) -> None:
    """Report ready, then block until a stop signal (for services with nothing to do yet)."""
    ctx.set_ready()
    await ctx.stopping.wait()
