"""Settings of the billing service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class BillingSettings(CommonSettings):
    """Tariffs, invoices and the cost and payback estimator."""

    billing_db_pool_size: int = Field(
        default=4, ge=1, description="Most PostgreSQL connections billing holds."
    )
    demo_tariffs: bool | None = Field(
        None,
        description="Seed the demo tariffs at start for utilities that have none (idempotent). "
        "Unset: only when BALANS_ENVIRONMENT is 'development'.",
    )
    billing_period_consumer: str = Field(
        "billing-period", description="Durable JetStream consumer name on PeriodClosed events."
    )
    billing_allocation_consumer: str = Field(
        "billing-allocation",
        description="Durable JetStream consumer name on AllocationComputed events.",
    )
    billing_api_queue: str = Field(
        "billing", description="Queue group of the BillingRequest API (balans.billing.api)."
    )
    period_check_interval_s: float = Field(
        60.0,
        gt=0,
        description="Seconds between passes of the period closer over allocation watermarks.",
    )

    period_close_lateness_hours: int = Field(
        3,
        ge=0,
        description="The period closer closes a month only this many hours after it ended in "
        "the site's time zone (and once allocation is complete past its end), whatever the "
        "allocation watermark says.",
    )

    @property
    def seeds_demo_tariffs(self) -> bool:
        """Whether this process stores the demo tariffs at start."""
        if self.demo_tariffs is not None:
            return self.demo_tariffs
        return self.environment == "development"
