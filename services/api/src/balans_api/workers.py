"""More than one api process on one listening socket (``BALANS_API_WORKERS``).

The service process binds the socket, serves on it as worker 0 and starts the others as
spawned processes that inherit the socket: each accepts connections from it with its
own event loop, database pool and NATS connection, so the api uses more than one core.
What every worker must agree on lives in PostgreSQL (the per-client login window in
``login_attempts``, the per-user delay on the user's row); the cache of building-wide
figures stays per process, as every worker computes the same values from the same rows.

A worker stops on SIGTERM (the service sends it when it stops) or when the service
process is gone; the service fails (and its supervisor restarts it) when a worker dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import signal
import socket
from multiprocessing.process import BaseProcess

import structlog
import uvloop

from balans_api.app import create_app
from balans_api.server import serving, settle_gc
from balans_api.settings import ApiSettings
from balans_core.logging import configure_logging
from balans_core.nats import connect_nats

log = structlog.get_logger("api")

STOP_WAIT_S = 15.0
PARENT_POLL_S = 1.0


def start_workers(sock: socket.socket, count: int) -> list[BaseProcess]:
    """Start workers 1..count-1 serving on ``sock`` (the caller is worker 0)."""
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(
            target=worker_main, args=(sock, index, os.getpid()), name=f"balans-api-{index}"
        )
        for index in range(1, count)
    ]
    for worker in workers:
        worker.start()
    return workers


def check_workers(workers: list[BaseProcess]) -> None:
    """Raise when a worker has exited (the service then stops and is restarted)."""
    for worker in workers:
        if not worker.is_alive():
            raise RuntimeError(f"api worker {worker.name} exited with code {worker.exitcode}")


def stop_workers(workers: list[BaseProcess]) -> None:
    """SIGTERM every worker, wait for them to drain, kill what is left."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        worker.join(STOP_WAIT_S)
        if worker.is_alive():
            log.error("api worker did not stop; killing it", worker=worker.name)
            worker.kill()
            worker.join()


def worker_main(sock: socket.socket, index: int, parent: int) -> None:
    """Entry point of a spawned worker."""
    settings = ApiSettings()
    configure_logging(settings.log_format, settings.log_level)
    uvloop.run(_serve(settings, sock, index, parent))


async def _serve(settings: ApiSettings, sock: socket.socket, index: int, parent: int) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    nats = await connect_nats(settings.nats_url, f"balans-api-{index}")
    app = create_app(settings, nats)
    async with serving(app, sock) as task:
        settle_gc()
        log.info("api worker serving", worker=index, pid=os.getpid())
        while not stopping.is_set() and not task.done() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), PARENT_POLL_S)
        if task.done():
            await task  # the server failed: raise its error
    await app.state.dispatcher.drain()
    await nats.drain()
