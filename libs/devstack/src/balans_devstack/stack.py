"""The embedded development stack: PostgreSQL and NATS, or servers named in settings.

Used by ``balans run`` and by the pytest fixtures alike. When ``BALANS_DATABASE_URL`` /
``BALANS_NATS_URL`` are set, those servers are used and nothing is started for them.
The servers listen on the ports of the previous run in the same folder (``ports.json``)
when those are free, so a restarted stack keeps its URLs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from balans_devstack.nats_server import EmbeddedNats, NatsCluster
from balans_devstack.ports import PortBook
from balans_devstack.postgres import EmbeddedPostgres
from balans_devstack.recovery import Recovery

log = structlog.get_logger("devstack")


@dataclass(frozen=True)
class StackUrls:
    """Where the stack's servers answer."""

    database_url: str
    nats_url: str

    def env(self) -> dict[str, str]:
        """The settings a child process needs to find the servers."""
        return {"BALANS_DATABASE_URL": self.database_url, "BALANS_NATS_URL": self.nats_url}


def bench_durable() -> bool:
    """Whether a benchmark's servers run durable: yes, as ``balans run`` and compose do,
    unless ``BENCH_DURABLE=0`` (a quicker exploratory run whose figures are not to be
    quoted). A speed measured without fsync says nothing of what a deployment does."""
    return os.environ.get("BENCH_DURABLE", "1") != "0"


class DevStack:
    """Start and stop the embedded servers in ``data_dir`` (default ``.balans/``).

    ``durable`` (the default; ``balans run`` and ``balans stack``) keeps PostgreSQL's fsync
    and synchronous commit on and makes JetStream fsync before it acknowledges; the test
    fixtures turn both off for speed, which only a host crash could notice. Benchmarks run
    durable like production (:func:`bench_durable`).

    ``cluster`` starts a three-node NATS cluster instead of one server (``balans run
    --cluster``); its URL lists the three nodes."""

    def __init__(
        self,
        data_dir: Path | str = ".balans",
        *,
        durable: bool = True,
        database_url: str | None = None,
        nats_url: str | None = None,
        cluster: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database_url = database_url or os.environ.get("BALANS_DATABASE_URL")
        self.nats_url = nats_url or os.environ.get("BALANS_NATS_URL")
        self.postgres = (
            None if self.database_url else EmbeddedPostgres(self.data_dir, durable=durable)
        )
        self.nats: EmbeddedNats | NatsCluster | None = None
        if not self.nats_url:
            nats_type = NatsCluster if cluster else EmbeddedNats
            self.nats = nats_type(self.data_dir, durable=durable)
        self.ports = PortBook(self.data_dir / "ports.json")

    def start(self) -> StackUrls:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.postgres is not None:
                self.postgres.start(port=self.ports.port("postgres"))
                log.info("postgres started", url=self.postgres.url)
            if isinstance(self.nats, NatsCluster):
                self.nats.start(port=self.ports.port)
            elif self.nats is not None:
                self.nats.start(
                    port=self.ports.port("nats"), monitor_port=self.ports.port("nats_monitor")
                )
                log.info("nats started", url=self.nats.url)
        except BaseException:
            self.stop()
            raise
        return self.urls

    @property
    def urls(self) -> StackUrls:
        return StackUrls(
            database_url=self.database_url or (self.postgres.url if self.postgres else ""),
            nats_url=self.nats_url or (self.nats.url if self.nats else ""),
        )

    def watch(self, recovery: Recovery) -> None:
        """Have ``recovery`` restart a server that dies, on the same port and data."""
        if self.postgres is not None:
            postgres = self.postgres
            recovery.watch("postgres", lambda: postgres.proc, postgres.restart)
        if isinstance(self.nats, NatsCluster):
            self.nats.watch(recovery.watch)
        elif self.nats is not None:
            nats = self.nats
            recovery.watch("nats", lambda: nats.proc, nats.restart)

    def stop(self) -> None:
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def __enter__(self) -> StackUrls:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
