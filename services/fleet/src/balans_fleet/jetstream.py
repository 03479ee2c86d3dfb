"""How full the JetStream streams are and how far behind their durable consumers run."""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js.api import ConsumerInfo
from nats.js.client import JetStreamContext

from balans_fleet import metrics


async def oldest_unacked_age_s(js: JetStreamContext, stream: str, info: ConsumerInfo) -> float:
    """Seconds since the oldest message the consumer has not acknowledged was stored.

    That is the consumer's lag in time: the first message after its ack floor (restricted
    to its filter subject, so other consumers' subjects in the same stream do not count).
    """
    if not info.num_pending and not info.num_ack_pending:
        return 0.0
    floor = info.ack_floor.stream_seq if info.ack_floor and info.ack_floor.stream_seq else 0
    subject = info.config.filter_subject
    message = await js.get_msg(stream, seq=floor + 1, subject=subject, next=subject is not None)
    if message.time is None:
        return 0.0
    return max(0.0, (datetime.now(UTC) - message.time).total_seconds())


async def refresh_streams(js: JetStreamContext) -> None:
    """Set the stream and consumer gauges from the server's current stream infos."""
    for stream in await js.streams_info():
        name = stream.config.name or ""
        metrics.STREAM_MESSAGES.labels(name).set(stream.state.messages)
        metrics.STREAM_BYTES.labels(name).set(stream.state.bytes)
        metrics.STREAM_MAX_MESSAGES.labels(name).set(stream.config.max_msgs or -1)
        metrics.STREAM_MAX_BYTES.labels(name).set(stream.config.max_bytes or -1)
        for consumer in await js.consumers_info(name):
            if consumer.config.durable_name is None:
                continue  # ephemeral consumers come and go: their names would not be bounded
            labels = (name, consumer.name)
            metrics.CONSUMER_PENDING.labels(*labels).set(consumer.num_pending or 0)
            metrics.CONSUMER_ACK_PENDING.labels(*labels).set(consumer.num_ack_pending or 0)
            lag = await oldest_unacked_age_s(js, name, consumer)
            metrics.CONSUMER_LAG_SECONDS.labels(*labels).set(lag)
