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
    balance_readings_consumer: str = Field(
        "balance-readings",
        description="Durable JetStream consumer name on stored readings (the persister's): "
        "late rows of hours a kept window holds are read again on the building's turn.",
    )
    balance_topology_consumer: str = Field(
        "balance-topology",
        description="Durable JetStream consumer name on topology changes (provisioning).",
    )
    balance_workers: int = Field(
        1, ge=1, description="Buildings one process analyses at the same time."
    )
    balance_state_buildings: int = Field(
        2000,
        ge=1,
        description="Buildings whose analysis window one process keeps between events (the "
        "least recently analysed are dropped first; about 1 MB each with a 35-day window "
        "and 110 meters). A building without one is read in full.",
    )
    balance_analysis_every_hours: int = Field(
        6,
        ge=1,
        description="The detectors judge a building once in this many hours of data, on an "
        "hour spread by building, and at once after a full read; the events between only "
        "move its kept window on. An alert opens up to this many hours minus one later; 1 "
        "analyses every event.",
    )
    balance_db_pool_size: int = Field(
        4,
        ge=2,
        description="Most PostgreSQL connections balance holds (analyses and the group API).",
    )
