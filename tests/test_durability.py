"""Acknowledged means on disk: JetStream fsyncs before it ACKs (compose's NATS and the stack
`balans run` starts), and the embedded PostgreSQL keeps fsync and synchronous commit on.

The test fixtures' stack runs without both (``durable=False``) for speed: only a host crash
could tell the difference, and no test crashes the host.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

from balans_devstack.nats_server import nats_server_binary
from balans_devstack.processes import free_port
from balans_devstack.stack import DevStack

ROOT = Path(__file__).resolve().parents[1]


def _jetstream_config(monitor_port: int, timeout: float = 30) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/varz", timeout=2) as r:
                return dict(json.load(r)["jetstream"]["config"])
        except OSError:
            assert time.monotonic() < deadline, "nats-server did not answer"
            time.sleep(0.2)


def test_compose_nats_syncs_every_write_before_acknowledging(server_tmp_path: Path) -> None:
    """deploy/nats/nats.conf, as compose mounts it (only its paths and ports moved here)."""
    port, monitor, route = free_port(), free_port(), free_port()
    config = (ROOT / "deploy/nats/nats.conf").read_text()
    config = (
        config.replace("store_dir: /data", f'store_dir: "{server_tmp_path}"')
        .replace("listen: 0.0.0.0:4222", f"listen: 127.0.0.1:{port}")
        .replace("http: 0.0.0.0:8222", f"http: 127.0.0.1:{monitor}")
        .replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route}")  # its cluster port
    )
    assert str(server_tmp_path) in config, "compose's store_dir moved: update this test"
    (server_tmp_path / "nats.conf").write_text(config)
    with (server_tmp_path / "nats.log").open("wb") as log:
        server = subprocess.Popen(
            [nats_server_binary(), "-c", str(server_tmp_path / "nats.conf")],
            stdout=log,
            stderr=log,
            env={**os.environ, "NATS_SERVER_NAME": "nats-1"},  # as compose sets it
        )
    try:
        assert _jetstream_config(monitor)["sync_always"] is True
    finally:
        server.terminate()
        server.wait(10)


def test_the_stack_of_balans_run_is_durable(server_tmp_path: Path) -> None:
    """DevStack's defaults (what `balans run` and `balans stack` use): JetStream syncs
    always, PostgreSQL has fsync, synchronous_commit and full_page_writes on."""
    stack = DevStack(server_tmp_path)
    stack.start()
    try:
        assert stack.nats is not None
        assert stack.postgres is not None
        assert _jetstream_config(stack.nats.monitor_port)["sync_always"] is True
        settings = stack.postgres.psql(
            "select string_agg(name || '=' || setting, ',' order by name) from pg_settings"
            " where name in ('fsync', 'synchronous_commit', 'full_page_writes')"
        )
        assert settings == "fsync=on,full_page_writes=on,synchronous_commit=on"
    finally:
        stack.stop()
