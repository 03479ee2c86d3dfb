"""The embedded development stack: PostgreSQL and NATS, or servers named in settings.

Used by ``balans run`` and by the pytest fixtures alike. When ``BALANS_DATABASE_URL`` /
``BALANS_NATS_URL`` are set, those servers are used and nothing is started for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import structlog

from balans_devstack.nats_server import EmbeddedNats
from balans_devstack.postgres import EmbeddedPostgres

log = structlog.get_logger("devstack")


@dataclass(frozen=True)
class StackUrls:
    """Where the stack's servers answer."""

    database_url: str
    nats_url: str

    def env(self) -> dict[str, str]:
        """The settings a child process needs to find the servers."""
        return {"BALANS_DATABASE_URL": self.database_url, "BALANS_NATS_URL": self.nats_url}


class DevStack:
    """Start and stop the embedded servers in ``data_dir`` (default ``.balans/``)."""

    def __init__(
        self,
        data_dir: Path | str = ".balans",
        *,
        durable: bool = True,
        database_url: str | None = None,
        nats_url: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.database_url = database_url or os.environ.get("BALANS_DATABASE_URL")
        self.nats_url = nats_url or os.environ.get("BALANS_NATS_URL")
        self.postgres = (
            None if self.database_url else EmbeddedPostgres(self.data_dir, durable=durable)
        )
        self.nats = None if self.nats_url else EmbeddedNats(self.data_dir)

    def start(self) -> StackUrls:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.postgres is not None:
                self.postgres.start()
                log.info("postgres started", url=self.postgres.url)
            if self.nats is not None:
                self.nats.start()
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
