"""Settings of the ingest service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class IngestSettings(CommonSettings):
    """TCP server for concentrators and the JetStream -> PostgreSQL persister."""
