"""Lifecycle of a balans service process: start, report ready, stop cleanly on a signal.

A service supplies an async ``main(ctx)`` that sets up its work, calls ``ctx.set_ready()``,
then waits for ``ctx.stopping`` and drains. SIGTERM and SIGINT set ``ctx.stopping``; the
process exits 0 after ``main`` returns, or 1 if it raised.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

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


ServiceMain = Callable[[ServiceContext], Awaitable[None]]


async def serve(name: str, settings: CommonSettings, main: ServiceMain) -> None:
    """Run ``main`` with signal handling and the health server."""
    ctx = ServiceContext(name=name, settings=settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctx.stopping.set)
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
