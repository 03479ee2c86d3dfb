"""Settings of the ingest and persister services (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field

from balans_db.settings import DatabaseSettings


class IngestSettings(DatabaseSettings):
    """TCP server for concentrators: authenticate, publish to JetStream, ACK."""

    ingest_host: str = Field("0.0.0.0", description="Address the concentrator port binds to.")
    ingest_port: int = Field(4100, description="TCP port for concentrators; 0 picks a free one.")
    ingest_idle_timeout_s: float = Field(
        300.0, gt=0, description="Close a connection silent for this long (PING keeps it)."
    )
    ingest_handshake_timeout_s: float = Field(
        10.0, gt=0, description="Time for each handshake frame (the HELLO, then the proof)."
    )
    ingest_max_inflight: int = Field(
        8,
        ge=1,
        description="UPLOADs of one connection awaiting JetStream's ack; reading pauses beyond.",
    )
    ingest_publish_timeout_s: float = Field(
        10.0, gt=0, description="Wait this long for JetStream's ack, then NACK UNAVAILABLE."
    )
    ingest_key_cache_s: float = Field(
        300.0, ge=0, description="How long a concentrator key read from the database is reused."
    )
    ingest_module_cache_s: float = Field(
        300.0,
        ge=0,
        description="How long a building's registered modules are reused (an unknown module "
        "reloads them at once).",
    )


class PersisterSettings(DatabaseSettings):
    """Durable JetStream consumer writing UPLOAD batches to the readings tables."""

    persister_durable: str = Field("persister", description="Durable consumer name.")
    persister_batch_messages: int = Field(
        256, ge=1, description="Messages fetched and written in one transaction at most."
    )
    persister_fetch_timeout_s: float = Field(
        0.2, gt=0, description="How long a fetch waits to fill a batch."
    )
    persister_workers: int = Field(
        2, ge=1, description="Concurrent fetch-write-ack loops (one connection each)."
    )
    persister_ack_wait_s: float = Field(
        60.0, gt=0, description="JetStream redelivers a batch not acked within this time."
    )
    persister_module_cache_s: float = Field(
        60.0,
        ge=0,
        description="How long a building's registered modules are reused (an unknown module "
        "reloads them at once).",
    )
