"""The small HTTP server every service runs: /healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator

import prometheus_client
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ReadinessCheck = Callable[[], bool]


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service's event loop, leaving SIGTERM and SIGINT to the service.

    uvicorn's own handling would record the stop signal and raise it again when the server
    stops, which the service reads as a second signal and exits 1 without a clean stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def health_app(service: str, is_ready: ReadinessCheck) -> Starlette:
    """Build the Starlette app that answers health probes and Prometheus scrapes."""

    async def healthz(_: Request) -> Response:
        return JSONResponse({"service": service, "status": "ok"})

    async def readyz(_: Request) -> Response:
        ready = is_ready()
        return JSONResponse({"service": service, "ready": ready}, status_code=200 if ready else 503)

    async def metrics(_: Request) -> Response:
        return Response(
            prometheus_client.generate_latest(), media_type=prometheus_client.CONTENT_TYPE_LATEST
        )

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ]
    )


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket (port 0 picks a free one) so the port is known at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


class HealthServer:
    """uvicorn serving :func:`health_app` inside the service's own event loop."""

    def __init__(self, service: str, host: str, port: int, is_ready: ReadinessCheck) -> None:
        self.socket = bind_socket(host, port)
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            health_app(service, is_ready), log_level="warning", access_log=False, lifespan="off"
        )
        self._server = EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve(sockets=[self.socket]))

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
