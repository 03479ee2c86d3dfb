"""Settings of the billing service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class BillingSettings(CommonSettings):
    """Tariffs, invoices and the cost and payback estimator."""

    db_pool_size: int = Field(
        default=4,
        ge=1,
        description="Most PostgreSQL connections billing holds (BALANS_DB_POOL_SIZE).",
    )
