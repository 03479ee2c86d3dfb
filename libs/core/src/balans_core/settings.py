"""Settings shared by every balans process.

Each service subclasses :class:`CommonSettings` with its own fields; all read the
environment with the prefix ``BALANS_`` (``BALANS_DATABASE_URL``, ``BALANS_NATS_URL``...).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Re-verification interval in years when a meter has none of its own. Heat and hot water 5,
# cold water 6: EU/MID practice (Germany, MessEV annex 7); gas 8 (diaphragm meters) and
# electricity 8 (electronic meters), ibid. docs/provisioning.md gives each source.
VERIFICATION_INTERVAL_YEARS: dict[str, int] = {
    "heat": 5,
    "hot_water": 5,
    "cold_water": 6,
    "gas": 8,
    "electricity": 8,
}


class CommonSettings(BaseSettings):
    """Connection and logging settings every service needs."""

    model_config = SettingsConfigDict(env_prefix="BALANS_", extra="ignore")

    database_url: str = Field(
        "postgresql://balans@127.0.0.1:5432/balans",
        description="PostgreSQL URL (asyncpg form, postgresql://...).",
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        description="NATS server URL; for a cluster, its nodes' URLs separated by commas.",
    )
    nats_stream_replicas: int | None = Field(
        None,
        ge=1,
        le=5,
        description="Replicas of every JetStream stream and partition lease bucket (3 on a "
        "three-node NATS cluster); set, existing ones are changed to it; unset, they are "
        "created with 1 and existing ones keep their own.",
    )
    partition_lease_s: float = Field(
        10.0,
        gt=0,
        description="A stage process holds its event partitions with leases of this length, "
        "renewed every quarter lease (the processes are listed at least every 2 s); a process "
        "that dies loses its partitions to the others after at most this long "
        "(docs/operations.md, Scale-out).",
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="'console' for people, 'json' for log shippers."
    )
    log_level: str = Field("info", description="Minimum log level.")
    health_host: str = Field("127.0.0.1", description="Address of the health/metrics server.")
    health_port: int = Field(
        0, description="Port of /healthz, /readyz and /metrics; 0 picks a free port."
    )
    environment: str = Field(
        "development",
        description="'development' (the default, for make run) lets the api use its built-in "
        "JWT secret and create the demo logins, and billing seed the demo tariffs; set "
        "'production' in deployments.",
    )
    consumer_max_deliveries: int = Field(
        5,
        ge=1,
        description="A JetStream message whose handling failed this many times goes to the "
        "DEADLETTER stream (balans deadletter list / replay) and is not redelivered.",
    )
    outbox_poll_interval_s: float = Field(
        1.0,
        gt=0,
        description="How often a service's outbox relay looks for announcements not yet "
        "acknowledged by JetStream (it is also woken right after each commit).",
    )
    readings_horizon_days: int = Field(
        400,
        ge=1,
        description="Readings older than this are refused (ingest, persister); monthly "
        "partitions are kept from then on.",
    )
    readings_clock_skew_s: int = Field(
        600,
        ge=0,
        description="How far past the server's clock a reading's time may be (a concentrator "
        "clock running fast); later readings are refused.",
    )

    verification_interval_years: dict[str, int] = Field(
        dict(VERIFICATION_INTERVAL_YEARS),
        description="Re-verification interval in years per utility, for meters without "
        "their own (JSON; a utility left out keeps its default). Sources: "
        "docs/provisioning.md.",
    )
    verification_warn_days: int = Field(
        60,
        ge=0,
        description="A verification_due alert opens this many days before a meter's "
        "verification expires.",
    )

    def verification_intervals(self) -> dict[str, int]:
        """Years per utility: the defaults overlaid with what the setting names."""
        return {**VERIFICATION_INTERVAL_YEARS, **self.verification_interval_years}

    def readings_window(self, now: datetime) -> tuple[datetime, datetime]:
        """The earliest and the latest time a reading may carry at ``now`` (both allowed)."""
        return (
            now - timedelta(days=self.readings_horizon_days),
            now + timedelta(seconds=self.readings_clock_skew_s),
        )
