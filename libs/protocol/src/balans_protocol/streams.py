"""The JetStream streams of balans and an idempotent way to create them.

Whoever first needs a stream calls :func:`ensure_streams`; calling it again (from any
service, any number of times) changes nothing, and brings an older configuration of a
stream up to the one declared here.
"""

from __future__ import annotations

from dataclasses import replace

from nats.js.api import RetentionPolicy, StorageType, StreamConfig, SubjectTransform
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError

from balans_protocol import subjects

DAY_S = 24 * 3600.0

# A resend after a reconnect usually comes within minutes; the window catches those
# without a database round trip. Later resends are still harmless: the persister's
# unique keys drop them (docs/protocol.md, "Exactly once").
UPLOADS_DUPLICATE_WINDOW_S = 3600.0


def _file_stream(
    name: str,
    description: str,
    subject: str,
    max_age_days: int,
    duplicate_window_s: float,
    subject_transform: SubjectTransform | None = None,
) -> StreamConfig:
    """A file-backed stream keeping messages for ``max_age_days`` (limits retention, so
    any number of consumers can read it)."""
    return StreamConfig(
        name=name,
        description=description,
        subjects=[subject],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=max_age_days * DAY_S,
        duplicate_window=duplicate_window_s,
        subject_transform=subject_transform,
    )


STREAMS: tuple[StreamConfig, ...] = (
    _file_stream(
        subjects.UPLOADS_STREAM,
        "Verified UPLOAD batches from concentrators (ingest -> persister)",
        subjects.UPLOADS_ALL,
        7,
        UPLOADS_DUPLICATE_WINDOW_S,
    ),
    _file_stream(
        subjects.EVENTS_STREAM,
        "Pipeline events: readings stored, allocation computed, period closed",
        subjects.EVENTS_ALL,
        30,
        120.0,
        # stored with the building's partition in the subject (subjects.EVENT_PARTITIONS)
        SubjectTransform(
            src=subjects.EVENTS_PARTITIONED_SOURCE, dest=subjects.EVENTS_PARTITIONED_DEST
        ),
    ),
    _file_stream(
        subjects.ALERTS_STREAM,
        "Alerts opened, updated and closed by balance",
        subjects.ALERTS_ALL,
        90,
        120.0,
    ),
    # Kept a year and more: an integrator that was offline (or subscribes later) still gets
    # every invoice and correction of the last year's months, once each.
    _file_stream(
        subjects.INVOICES_STREAM,
        "Invoices and corrections issued by billing (InvoiceIssued)",
        subjects.INVOICES_ALL,
        400,
        3600.0,
    ),
    # Kept long: a dead letter waits for an operator (``balans deadletter``); the message id
    # (stream, sequence, consumer) makes a dead letter written twice count once.
    _file_stream(
        subjects.DEADLETTER_STREAM,
        "Messages consumers gave up on, with their error (balans deadletter list/replay)",
        subjects.DEADLETTER_ALL,
        90,
        3600.0,
    ),
)


async def ensure_streams(js: JetStreamContext, replicas: int | None = None) -> None:
    """Create every balans stream, or update it to the configuration above.

    ``replicas`` (``BALANS_NATS_STREAM_REPLICAS``; 3 on a three-node cluster) is what a
    stream gets; ``None`` creates with 1 and leaves an existing stream's replicas as they
    are, so a caller that does not know the cluster never shrinks it."""
    for declared in STREAMS:
        config = replace(declared, num_replicas=replicas or 1)
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with another configuration: converge on ours
            if replicas is None:
                existing = await js.stream_info(declared.name or "")
                config.num_replicas = existing.config.num_replicas
            await js.update_stream(config)
