"""Settings of the sim service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field

from balans_db.settings import DatabaseSettings


class SimSettings(DatabaseSettings):
    """The simulated city: mesh, physics, faults, concentrators (``BALANS_MASTER_KEY`` opens
    their sealed keys)."""

    sim_preset: str = Field(
        "demo", description="City: 'demo' (the demo seed), 'generated', 'reference'."
    )
    sim_buildings: int = Field(5, ge=1, description="Buildings of a 'generated' city.")
    sim_seed: int = Field(1, description="Seed of the city, physics and faults.")
    sim_epoch: datetime = Field(
        datetime(2025, 10, 15, tzinfo=UTC),
        description="When the simulated meters were installed: registers count from here, "
        "so restarts continue the same series.",
    )
    sim_backfill_days: int = Field(
        35,
        ge=0,
        description="Days of history written at start (35 reach into the previous month, so "
        "the demo has a closed billing period with invoices).",
    )
    sim_backfill_holdback_hours: int = Field(
        0,
        ge=0,
        description="The backfill stops this many hours before now; the real-time path then "
        "uploads those hours through ingest at once (end-to-end tests use it to see an upload "
        "without waiting for the next hour).",
    )
    sim_faults_per_week: float = Field(0.5, ge=0, description="Faults per building per week.")
    sim_outages_per_week: float = Field(
        0.1, ge=0, description="Uplink (GPRS) outages per concentrator per week, real time."
    )
    sim_outage_mean_hours: float = Field(2.0, ge=0, description="Mean length of an outage.")
    sim_meter_exchanges_per_year: float = Field(
        2.0,
        ge=0,
        description="Meter exchanges per building per year (flat or riser meters replaced on "
        "their input, some with the module's counter reset or a finer pulse), recorded in the "
        "world as the operator would, with their ground truth.",
    )
    sim_tenant_changes_per_year: float = Field(
        2.0,
        ge=0,
        description="Tenant changes per building per year (an account closes, a new one "
        "opens on the same flat that day), recorded in the world, with their ground truth.",
    )
    sim_ground_truth: Path = Field(
        Path(".balans/ground_truth.jsonl"), description="Where injected faults are recorded."
    )
    sim_boot_file: Path = Field(
        Path(".balans/sim-boot-counter"),
        description="The concentrators' boot counter, taken anew and stored at every start so "
        "a restarted simulator never reuses message ids.",
    )
    sim_realtime: bool = Field(True, description="After the backfill, upload every hour.")
    sim_ingest_host: str = Field(
        "127.0.0.1", description="Host of ingest's concentrator port the concentrators dial."
    )
    sim_ingest_port: int = Field(
        4100, description="ingest's concentrator port (ingest binds BALANS_INGEST_PORT)."
    )
