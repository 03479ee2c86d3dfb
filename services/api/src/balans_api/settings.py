"""Settings of the api service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import NoDecode

from balans_db.settings import DatabaseSettings

DEV_JWT_SECRET = "balans-development-secret-change-me-0123456789"


class ApiSettings(DatabaseSettings):
    """HTTP API and web portal (``master_key`` seals the concentrator keys it issues)."""

    api_host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    api_port: int = Field(8000, description="Port of the REST API and the portal (0 = free).")
    jwt_secret: str = Field(DEV_JWT_SECRET, description="HMAC key that signs access tokens.")
    jwt_ttl_s: int = Field(900, gt=0, description="Lifetime of an access token in seconds.")
    api_trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        [],
        description="Reverse proxies (addresses or networks, comma-separated) whose "
        "X-Forwarded-For names the client; from any other peer the header is ignored. "
        "Default: none.",
    )
    login_rate: str = Field(
        "10/minute", description="Login attempts allowed per client address (limits syntax)."
    )
    login_free_failures: int = Field(
        5, ge=1, description="Failed logins of a user before each further one adds a delay."
    )
    login_delay_s: float = Field(
        1.0, gt=0, description="The first delay; each further failed login doubles it."
    )
    login_max_delay_s: float = Field(
        300.0,
        gt=0,
        description="Longest delay between a user's failed logins (a wait, never a lock-out; "
        "an admin clears it with POST /api/v1/users/{id}/unlock).",
    )
    demo_users: bool = Field(
        True,
        description="In development, create the demo admin, operator and consumer logins "
        "at start (make run); never outside development.",
    )
    api_db_pool_size: int = Field(
        10, gt=0, description="Most PostgreSQL connections an api process holds."
    )
    api_workers: int = Field(
        2,
        ge=1,
        le=64,
        description="Processes serving HTTP on the one port (about one per core); each "
        "holds up to API_DB_POOL_SIZE connections.",
    )
    cache_ttl_s: float = Field(
        60.0, ge=0, description="How long building-wide aggregates (averages) are cached."
    )
    api_auth_cache_ttl_s: float = Field(
        1.0,
        ge=0,
        description="How long an api process keeps a user's role and account after reading "
        "them (0: read them for every request); a change made through the api applies at "
        "once in the process that made it, in the others within this time.",
    )
    command_timeout_s: float = Field(15.0, gt=0, description="How long a command may take.")
    import_heartbeat_s: float = Field(
        2.0,
        gt=0,
        description="How often the api process running an import job writes that it is "
        "still at it (with its progress).",
    )
    import_interrupted_after_s: float = Field(
        60.0,
        gt=0,
        description="An import job whose heartbeat is older than this (its process died) is "
        "answered as failed, interrupted: the import wrote nothing. Generous, since a large "
        "city's comparison holds the event loop for seconds between beats; more than "
        "BALANS_IMPORT_HEARTBEAT_S.",
    )

    api_keep_months: int = Field(
        12,
        ge=0,
        description="Closed months (of each building's calendar) whose profiles are kept "
        "built for every flat (kept_profiles); 0: none, every profile is computed.",
    )
    api_keep_interval_s: float = Field(
        60.0,
        gt=0,
        description="How often the api's service process looks for closed months to build "
        "(a month that closed, one late data invalidated, one balance has moved past).",
    )
    api_keep_settle_s: float = Field(
        30.0,
        ge=0,
        description="How long a building month invalidated by late data waits, with no "
        "further invalidation, before it is built again (a backfill of many batches is "
        "then built once); meanwhile its profiles are computed.",
    )
    api_kept_consumer: str = Field(
        "api-kept",
        description="Prefix of the durable JetStream consumers (<prefix>-readings, "
        "-allocation, -topology) of the announcements that invalidate kept answers.",
    )

    @field_validator("api_trusted_proxies", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _heartbeat_within_the_interruption(self) -> ApiSettings:
        if self.import_interrupted_after_s <= self.import_heartbeat_s:
            raise ValueError(
                "BALANS_IMPORT_INTERRUPTED_AFTER_S must exceed BALANS_IMPORT_HEARTBEAT_S "
                "(a running import job would be answered as interrupted between its beats)"
            )
        return self

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_development(self) -> ApiSettings:
        if self.environment != "development" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("set BALANS_JWT_SECRET outside development")
        return self
