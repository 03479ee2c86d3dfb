"""Connection events: our own shutdown is not reported as a fault, a lost server is."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from balans_core.nats import connect_nats
from balans_devstack.eventually import eventually
from balans_devstack.nats_server import EmbeddedNats


@pytest.mark.asyncio
async def test_drain_logs_info_and_server_loss_logs_a_warning(tmp_path: Path) -> None:
    """Draining at shutdown logs 'nats connection closed' (info); a server that goes away
    logs 'nats disconnected' as a warning."""
    server = EmbeddedNats(tmp_path)
    server.start()
    try:
        with capture_logs() as logs:
            nc = await connect_nats(server.url, "test")
            await nc.drain()
            lost = await connect_nats(server.url, "test")
            server.stop()
            await eventually(
                "'nats disconnected' logged",
                lambda: any(e["event"] == "nats disconnected" for e in logs),
            )
            await lost.close()
    finally:
        server.stop()
    closed = [e for e in logs if e["event"] == "nats connection closed"]
    disconnected = [e for e in logs if e["event"] == "nats disconnected"]
    assert closed
    assert closed[0]["log_level"] == "info"
    assert disconnected
    assert disconnected[0]["log_level"] == "warning"
