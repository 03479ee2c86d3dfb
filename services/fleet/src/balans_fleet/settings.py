"""Settings of the fleet collector (environment prefix ``BALANS_``, fields ``fleet_*``)."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class FleetSettings(CommonSettings):
    """How often to look, and the thresholds that make a concentrator or module a concern."""

    fleet_refresh_seconds: float = Field(60.0, gt=0, description="Seconds between refreshes.")
    fleet_silent_after_hours: float = Field(
        2.0, gt=0, description="A concentrator with no module status this long is silent."
    )
    fleet_low_battery_mv: int = Field(
        3100,
        description="Latest battery voltage below this (mV) counts as low (ER18505M: 3.6 V new).",
    )
    fleet_battery_lookback_hours: float = Field(
        26.0, gt=0, description="Only modules that reported within this window are counted."
    )
    fleet_estimated_window_hours: float = Field(
        24.0, gt=0, description="Window of meter_consumption hours for the estimated share."
    )
