"""How full the JetStream streams are and how far behind their durable consumers run."""

from __future__ import annotations

from nats.js.client import JetStreamContext

from balans_core.fleet import metrics


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
