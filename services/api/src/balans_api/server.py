"""The HTTP server of the api (uvicorn), one configuration for the service and its tests.

Proxy headers are not uvicorn's business here: uvicorn would trust ``X-Forwarded-For``
from loopback by default; the app applies them only from ``BALANS_API_TRUSTED_PROXIES``
(see ``app.create_app``)."""

from __future__ import annotations

import asyncio
import gc
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI

from balans_api.one_write import OneWriteProtocol
from balans_core.health import EmbeddedServer

GC_YOUNG_THRESHOLD = 50_000


def settle_gc() -> None:
    """Once the server has started: everything made so far (the app, its routes and
    models, the pool) is frozen out of the garbage collector's scans, and the young
    generation is collected every 50 000 allocations instead of 700. A month profile
    allocates thousands of objects, and the collector's passes over the young ones and the
    app's long-lived ones were about a tenth of a worker's CPU (py-spy)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def http_server(app: FastAPI) -> uvicorn.Server:
    return EmbeddedServer(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            proxy_headers=False,
            http=OneWriteProtocol,
        )
    )


@asynccontextmanager
async def serving(app: FastAPI, sock: socket.socket) -> AsyncIterator[asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` until the block ends; yields the server task once uvicorn
    has started (or has already failed: the task is then done)."""
    server = http_server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    # uvicorn offers no 'started' event to await, only the flag
    while not server.started and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    try:
        yield task
    finally:
        server.should_exit = True
        await task
