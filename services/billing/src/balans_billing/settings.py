"""Settings of the billing service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class BillingSettings(CommonSettings):
    """Tariffs, invoices and the cost and payback estimator."""
