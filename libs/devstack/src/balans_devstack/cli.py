"""``balans run`` (the whole system) and ``balans stack`` (only the servers).

``--cluster`` runs the scale-out layout on one machine: a three-node NATS cluster whose
streams have three replicas, and two processes of each pipeline stage that can share its
work (persister, allocation, balance; docs/operations.md, "NATS cluster").

Both stay in the foreground as the supervisor of what they started: every half second
they reap and restart a dead server or service (``recovery``), until Ctrl-C or SIGTERM
stops everything in order.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import prometheus_client
import typer

from balans_db import migrate
from balans_db.partitions import ensure_partitions
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.settings import DatabaseSettings
from balans_devstack.prometheus import EmbeddedPrometheus, prometheus_binary
from balans_devstack.recovery import Recovery
from balans_devstack.stack import DevStack, StackUrls
from balans_devstack.supervisor import Supervisor, discover_services


def _supervise_until_signal(recovery: Recovery) -> None:
    """Keep the children alive until SIGINT or SIGTERM (in the main thread, which spawned
    them: their parent-death signal is tied to it)."""
    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not stop.wait(0.5):
        recovery.check()


def _prepare_database(urls: StackUrls, with_demo: bool) -> None:
    migrate.upgrade(urls.database_url)
    asyncio.run(ensure_partitions(urls.database_url))
    if with_demo:
        vault = KeyVault.from_hex(DatabaseSettings().master_key)
        added = asyncio.run(seed(urls.database_url, vault))
        typer.echo(f"demo city: {added} building(s) added")


def _line_buffered() -> None:
    """Each line out at once, also into a file or a pipe: an operator tailing the log sees a
    restart when it happens, not when a buffer fills."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)


#: stages that run twice with --cluster (ingest listens on one TCP port: once)
SCALED_OUT = ("persister", "allocation", "balance")
CLUSTER_ENV = {"BALANS_NATS_STREAM_REPLICAS": "3"}


def _instances(name: str, cluster: bool) -> list[str]:
    """The supervised names of a service: ``allocation`` and ``allocation-2`` in a cluster."""
    return [name, f"{name}-2"] if cluster and name in SCALED_OUT else [name]


def run(
    data_dir: Path = typer.Option(Path(".balans"), help="Where the embedded servers keep data."),
    services: str = typer.Option("all", help="Comma-separated services to start, or 'all'."),
    demo: bool = typer.Option(True, help="Load the demo city before starting."),
    ready_timeout: float = typer.Option(120, help="Seconds to wait for every service."),
    prometheus: bool = typer.Option(
        True, help="Also start Prometheus on the services when a `prometheus` binary is installed."
    ),
    cluster: bool = typer.Option(
        False,
        help="A three-node NATS cluster (streams with 3 replicas) and two processes of "
        "persister, allocation and balance.",
    ),
) -> None:
    """Run the whole system: embedded PostgreSQL and NATS, schema, demo city, services."""
    _line_buffered()
    known = discover_services()
    chosen = list(known) if services == "all" else [s.strip() for s in services.split(",")]
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown services {unknown}; known: {sorted(known)}")
    stack = DevStack(data_dir, cluster=cluster)
    urls = stack.start()
    recovery = Recovery()
    stack.watch(recovery)
    supervisor = Supervisor(urls, stack.data_dir, CLUSTER_ENV if cluster else {}, ports=stack.ports)
    binary = prometheus_binary() if prometheus else None
    scraper = EmbeddedPrometheus(stack.data_dir, binary) if binary else None
    try:
        typer.echo(f"PostgreSQL {urls.database_url}\nNATS       {urls.nats_url}")
        _prepare_database(urls, demo)
        for name in chosen:
            for instance in _instances(name, cluster):
                supervisor.start(instance, known[name])
        late = supervisor.wait_ready(ready_timeout)
        if late:
            raise RuntimeError(f"services not ready after {ready_timeout} s: {late}")
        supervisor.watch(recovery)
        for service in supervisor.services:
            typer.echo(f"ready: {service.name:<12} health http://127.0.0.1:{service.health_port}")
        metrics_port = stack.ports.port("supervisor_metrics")
        prometheus_client.start_http_server(metrics_port, addr="127.0.0.1")
        typer.echo(f"supervisor metrics http://127.0.0.1:{metrics_port}/metrics")
        if scraper is not None:
            targets = {s.name: s.health_port for s in supervisor.services}
            scraper.start(
                targets | {"supervisor": metrics_port}, port=stack.ports.port("prometheus")
            )
            recovery.watch("prometheus", lambda: scraper.proc, scraper.restart)
            typer.echo(f"prometheus: {scraper.url}")
        if "api" in chosen:
            # the api reads its port from BALANS_API_PORT (the api's settings; 8000 by default)
            port = os.environ.get("BALANS_API_PORT", "8000")
            typer.echo(f"portal: http://127.0.0.1:{port}   (Ctrl-C stops everything)")
        else:
            typer.echo("running without the api (Ctrl-C stops everything)")
        _supervise_until_signal(recovery)
    finally:
        typer.echo("stopping...")
        if scraper is not None:
            scraper.stop()
        supervisor.stop()
        stack.stop()
        typer.echo("stopped")


def stack_command(
    data_dir: Path = typer.Option(Path(".balans"), help="Where the embedded servers keep data."),
    cluster: bool = typer.Option(False, help="A three-node NATS cluster instead of one server."),
) -> None:
    """Start only PostgreSQL and NATS (migrated), print their URLs, keep them running
    (restarted on the same ports if they die) until Ctrl-C."""
    _line_buffered()
    stack = DevStack(data_dir, cluster=cluster)
    with stack as urls:
        migrate.upgrade(urls.database_url)
        for key, value in (urls.env() | (CLUSTER_ENV if cluster else {})).items():
            typer.echo(f"export {key}={value}")
        recovery = Recovery()
        stack.watch(recovery)
        _supervise_until_signal(recovery)


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.command("run")(run)
    app.command("stack")(stack_command)
