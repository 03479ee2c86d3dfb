"""Settings of the balance service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class BalanceSettings(CommonSettings):
    """Balance groups, imbalance bands and detectors."""

    balance_window_days: int = Field(
        35, ge=7, description="Days of history each analysis reads (band window + episodes)."
    )
    balance_band_days: int = Field(14, ge=3, description="Rolling window of the normal band.")
    balance_band_k: float = Field(4.0, gt=0, description="Band half-width in robust sigmas.")
    balance_min_run_hours: int = Field(
        12, ge=1, description="Hours out of band before an alert opens."
    )
    balance_min_coverage: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Share of a group's flats that must be metered for its imbalance to "
        "raise alerts (below it the group is shown as incomplete).",
    )
    balance_loss_target_share: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="Losses operators accept, as a share of the balance meter (shown "
        "against each group's losses).",
    )
    balance_consumer: str = Field(
        "balance", description="Durable JetStream consumer name on allocation events."
    )
    balance_topology_consumer: str = Field(
        "balance-topology",
        description="Durable JetStream consumer name on topology changes (provisioning).",
    )
    balance_workers: int = Field(
        1, ge=1, description="Buildings one process analyses at the same time."
    )
    balance_db_pool_size: int = Field(
        4,
        ge=2,
        description="Most PostgreSQL connections balance holds (analyses and the group API).",
    )
