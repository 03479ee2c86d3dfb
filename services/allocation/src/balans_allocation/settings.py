"""Settings of the allocation service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from balans_core.settings import CommonSettings


class AllocationSettings(CommonSettings):
    """Per-flat hourly heat and the building methodology."""
