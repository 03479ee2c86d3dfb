"""The JetStream streams of balans and an idempotent way to create them.

Whoever first needs a stream calls :func:`ensure_streams`; calling it again (from any
service, any number of times) changes nothing, and brings an older configuration of a
stream up to the one declared here.
"""

from __future__ import annotations

from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BadRequestError

from balans_protocol import subjects

DAY_S = 24 * 3600.0

# A resend after a reconnect usually comes within minutes; the window catches those
# without a database round trip. Later resends are still harmless: the persister's
# unique keys drop them (docs/protocol.md, "Exactly once").
UPLOADS_DUPLICATE_WINDOW_S = 3600.0

STREAMS: tuple[StreamConfig, ...] = (
    StreamConfig(
        name=subjects.UPLOADS_STREAM,
        description="Verified UPLOAD batches from concentrators (ingest -> persister)",
        subjects=[subjects.UPLOADS_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * DAY_S,
        duplicate_window=UPLOADS_DUPLICATE_WINDOW_S,
    ),
    StreamConfig(
        name=subjects.EVENTS_STREAM,
        description="Pipeline events: readings stored, allocation computed, period closed",
        subjects=[subjects.EVENTS_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=30 * DAY_S,
        duplicate_window=120.0,
    ),
    StreamConfig(
        name=subjects.ALERTS_STREAM,
        description="Alerts opened, updated and closed by balance",
        subjects=[subjects.ALERTS_ALL],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=90 * DAY_S,
        duplicate_window=120.0,
    ),
)


async def ensure_streams(js: JetStreamContext) -> None:
    """Create every balans stream, or update it to the configuration above."""
    for config in STREAMS:
        try:
            await js.add_stream(config)
        except BadRequestError:  # exists with another configuration: converge on ours
            await js.update_stream(config)
