"""ensure_streams is idempotent and converges an older stream configuration on ours."""

from __future__ import annotations

from balans_core.nats import connect_nats
from balans_devstack.nats_server import EmbeddedNats
from balans_protocol import subjects
from balans_protocol.streams import DAY_S, UPLOADS_DUPLICATE_WINDOW_S, ensure_streams


async def test_ensure_streams_twice_and_over_an_older_config(own_nats: EmbeddedNats) -> None:
    """Creating the streams twice works, and a differently configured EVENTS is updated."""
    nc = await connect_nats(own_nats.url, "streams-test")
    try:
        js = nc.jetstream()
        await js.add_stream(name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_ALL], max_age=60)
        await ensure_streams(js)
        await ensure_streams(js)
        uploads = await js.stream_info(subjects.UPLOADS_STREAM)
        events = await js.stream_info(subjects.EVENTS_STREAM)
    finally:
        await nc.close()
    assert uploads.config.subjects == [subjects.UPLOADS_ALL]
    assert uploads.config.duplicate_window == UPLOADS_DUPLICATE_WINDOW_S
    assert events.config.max_age == 30 * DAY_S
