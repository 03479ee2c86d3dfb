"""Connecting to NATS with the logging and reconnect policy every service shares."""

from __future__ import annotations

import nats
import structlog
from nats.aio.client import Client


async def connect_nats(url: str, name: str) -> Client:
    """Connect with unlimited reconnects; connection events are logged, never swallowed.

    ``url`` may name several servers separated by commas (the nodes of a cluster): the client
    connects to one and moves to another when it goes away."""
    log = structlog.get_logger(name)
    client: list[Client] = []  # set once connected; the callbacks need it

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    async def on_disconnected() -> None:
        if client and (client[0].is_closed or client[0].is_draining):
            log.info("nats connection closed")  # our own drain/close at shutdown
        else:
            log.warning("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")

    nc = await nats.connect(
        [server.strip() for server in url.split(",")],  # a cluster's nodes, comma-separated
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnected,
        reconnected_cb=on_reconnected,
    )
    client.append(nc)
    return nc
