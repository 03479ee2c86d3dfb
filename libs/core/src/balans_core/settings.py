"""Settings shared by every balans process.

Each service subclasses :class:`CommonSettings` with its own fields; all read the
environment with the prefix ``BALANS_`` (``BALANS_DATABASE_URL``, ``BALANS_NATS_URL``...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """Connection and logging settings every service needs."""

    model_config = SettingsConfigDict(env_prefix="BALANS_", extra="ignore")

    database_url: str = Field(
        "postgresql://balans@127.0.0.1:5432/balans",
        description="PostgreSQL URL (asyncpg form, postgresql://...).",
    )
    nats_url: str = Field("nats://127.0.0.1:4222", description="NATS server URL.")
    log_format: Literal["console", "json"] = Field(
        "console", description="'console' for people, 'json' for log shippers."
    )
    log_level: str = Field("info", description="Minimum log level.")
    health_host: str = Field("127.0.0.1", description="Address of the health/metrics server.")
    health_port: int = Field(
        0, description="Port of /healthz, /readyz and /metrics; 0 picks a free port."
    )
