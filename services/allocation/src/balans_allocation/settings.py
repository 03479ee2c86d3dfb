"""Settings of the allocation service (environment prefix ``BALANS_``)."""

from __future__ import annotations

from pydantic import Field

from balans_core.settings import CommonSettings


class AllocationSettings(CommonSettings):
    """Per-flat hourly heat and the building methodology."""

    allocation_lateness_hours: int = Field(
        3,
        ge=0,
        description="A building-hour is computed once every heat channel has reported past "
        "it, or once the freshest channel is this many hours ahead (laggards are estimated "
        "and recomputed when their data arrives).",
    )
    allocation_lookaround_hours: int = Field(
        48,
        ge=1,
        description="Registers read either side of a computed range, so gaps up to this "
        "long interpolate the same way wherever the range starts; also how far a late "
        "reading can change earlier hours.",
    )
    allocation_batch_events: int = Field(
        64,
        ge=1,
        description="At most this many waiting ReadingsStored events are computed together "
        "(one fetch, one transaction, one query per kind for all their buildings); also the "
        "consumer's max_ack_pending.",
    )
    allocation_batch_linger_s: float = Field(
        0.05,
        ge=0,
        description="After the first partition's events arrive, wait up to this long for "
        "the other partitions' to join the batch: an hour's events arrive from the 16 "
        "partitions within milliseconds of each other, and each batch costs its fixed "
        "round trips (after a pause the hour came in four batches).",
    )
    allocation_batch_quiet_s: float = Field(
        0.01,
        ge=0,
        description="While lingering, a batch is closed once no other partition's events "
        "have come for this long (the partitions' fetches answer within milliseconds of "
        "each other, so a longer silence means the rest have nothing). A process held to a "
        "fraction of a core is paused for longer than that between its fetches' answers, "
        "and a gap cut too short splits what would be one batch into several, each paying "
        "the fixed statements; a longer gap adds to every batch's latency when nothing "
        "more comes.",
    )
    allocation_batch_workers: int = Field(
        1,
        ge=1,
        description="Batches computed at once by one process (the consumer's handler loops): "
        "with two, a batch formed while another is in PostgreSQL starts at once instead of "
        "after it, so the process computes while PostgreSQL runs the other's statements (a "
        "partition's next events wait for its batch, so a building is never in two; one loop "
        "gathers a batch at a time, so a lingering batch is not split). The process's CPU "
        "while batches overlap is divided between them by their buildings, so the "
        "partitions' weights count it once.",
    )
    allocation_batch_shares: int = Field(
        2,
        ge=1,
        description="A batch's buildings are split into this many shares, each computed in "
        "its own transaction on its own connection at the same time: while one share's "
        "statements run in PostgreSQL, another's kernels and rows run in this process.",
    )
    allocation_batch_share_min_buildings: int = Field(
        8,
        ge=1,
        description="A share holds at least this many buildings: a batch of fewer than twice "
        "this many is one share. Each share runs the same 22 or so statements (lock, loads, "
        "staging tables, copies, upserts, days, watermarks, outbox) whatever its size; in a "
        "small batch that fixed cost, not the work, is most of PostgreSQL's time, and a "
        "second share doubles it. A batch of 16 buildings or more (each of two processes' "
        "halves of a 40-building backlog) splits, so one share's writes run in PostgreSQL "
        "while the other's buildings are computed (the shares take turns between buildings).",
    )
    allocation_consumer: str = Field("allocation", description="Durable JetStream consumer name.")
    allocation_sensor_consumer: str = Field(
        "allocation-sensor-faults",
        description="Durable JetStream consumer of balance's faulty_sensor alerts (the pair's "
        "hours are estimated while the alert holds).",
    )
    allocation_db_pool_size: int = Field(
        4, ge=1, description="Most PostgreSQL connections allocation holds."
    )
