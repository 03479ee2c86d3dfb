"""Settings of the api service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from balans_core.settings import CommonSettings

DEV_JWT_SECRET = "balans-development-secret-change-me-0123456789"


class ApiSettings(CommonSettings):
    """HTTP API and web portal."""

    api_host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    api_port: int = Field(8000, description="Port of the REST API and the portal (0 = free).")
    environment: str = Field(
        "development", description="'development' allows the built-in JWT secret; else set one."
    )
    jwt_secret: str = Field(DEV_JWT_SECRET, description="HMAC key that signs access tokens.")
    jwt_ttl_s: int = Field(900, gt=0, description="Lifetime of an access token in seconds.")
    login_rate: str = Field(
        "10/minute", description="Login attempts allowed per client address and per username."
    )
    demo_users: bool = Field(
        True,
        description="In development, create the demo admin, operator and consumer logins "
        "at start (make run); never outside development.",
    )
    db_pool_size: int = Field(10, gt=0, description="asyncpg connections per process.")
    cache_ttl_s: float = Field(
        60.0, ge=0, description="How long building-wide aggregates (averages) are cached."
    )
    command_timeout_s: float = Field(15.0, gt=0, description="How long a command may take.")

    @model_validator(mode="after")
    def _refuse_dev_secret_outside_development(self) -> ApiSettings:
        if self.environment != "development" and self.jwt_secret == DEV_JWT_SECRET:
            raise ValueError("set BALANS_JWT_SECRET outside development")
        return self
