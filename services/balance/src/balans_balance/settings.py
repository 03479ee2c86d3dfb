"""Settings of the balance service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class BalanceSettings(CommonSettings):
    """Balance groups, imbalance bands and detectors."""
