"""Hostile or broken connections get a NACK (or are closed), are counted, store nothing,
and do not disturb the concentrators uploading next to them."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ingest_harness import (
    Pipeline,
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    wait_for_rows,
)
from prometheus_client import REGISTRY

from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.auth import UNAUTHENTICATED_KEY, new_nonce
from balans_protocol.errors import NackReason
from balans_protocol.frames import Ack, Frame, Hello, Nack, Ping, Upload, encode_frame
from balans_protocol.records import PulseRecord

HOUR = 3600
T0 = recent_day()
BAD_INPUT = 5  # the input every hostile upload uses: nothing may ever be stored on it


def _errors(reason: str) -> float:
    return REGISTRY.get_sample_value("balans_ingest_errors_total", {"reason": reason}) or 0.0


def _hostile_upload(module: int) -> Upload:
    return Upload.of([PulseRecord(module, BAD_INPUT, T0, 666)])


async def _nack_then_close(raw: RawConcentrator, key: bytes) -> NackReason:
    frame = await raw.read(key)
    assert await raw.closed_by_server()
    assert isinstance(frame.body, Nack)
    return frame.body.reason


async def _wrong_key(ingest: Pipeline, site: Any) -> NackReason:
    raw = RawConcentrator(site.serial, ingest.port, os.urandom(32))
    await raw.connect()
    raw.send(Upload(b""), seq=1)  # not even a HELLO
    return await _nack_then_close(raw, UNAUTHENTICATED_KEY)


async def _hello_refused(raw: RawConcentrator) -> NackReason:
    await raw.connect()
    raw.send(Hello(1, new_nonce()), seq=1)
    return await _nack_then_close(raw, UNAUTHENTICATED_KEY)


async def _wrong_key_hello(ingest: Pipeline, site: Any) -> NackReason:
    return await _hello_refused(RawConcentrator(site.serial, ingest.port, os.urandom(32)))


async def _unknown_concentrator(ingest: Pipeline, site: Any) -> NackReason:
    return await _hello_refused(RawConcentrator(site.serial + 99_999, ingest.port, site.key))


async def _oversized_prefix(ingest: Pipeline, site: Any) -> NackReason:
    raw = RawConcentrator(site.serial, ingest.port, site.key)
    await raw.handshake()
    raw.writer.write(b"\xff\xff\xff\xf0" + os.urandom(64))
    return await _nack_then_close(raw, raw.session_key)


async def _garbage(ingest: Pipeline, site: Any) -> NackReason:
    raw = RawConcentrator(site.serial, ingest.port, site.key)
    await raw.handshake()
    raw.writer.write(b"GET /metrics HTTP/1.1\r\nHost: ingest\r\n\r\n")  # "GET " = 1.2 GB
    return await _nack_then_close(raw, raw.session_key)


async def _replayed_from_another_session(ingest: Pipeline, site: Any) -> NackReason:
    first = RawConcentrator(site.serial, ingest.port, site.key)
    await first.handshake()
    recorded = encode_frame(
        Frame(site.serial, 9, _hostile_upload(site.modules[2])), first.session_key
    )
    await first.close()
    second = RawConcentrator(site.serial, ingest.port, site.key)
    await second.handshake()
    second.writer.write(recorded)
    return await _nack_then_close(second, second.session_key)


async def _truncated(ingest: Pipeline, site: Any) -> str:
    raw = RawConcentrator(site.serial, ingest.port, site.key)
    await raw.handshake()
    frame = encode_frame(Frame(site.serial, 3, _hostile_upload(site.modules[2])), raw.session_key)
    raw.writer.write(frame[: len(frame) // 2])
    await raw.writer.drain()
    await raw.close()
    return "closed"


async def test_bad_connections_are_refused_and_counted(
    own_nats: EmbeddedNats, site: Any, neighbour: Any
) -> None:
    """Wrong key, unknown concentrator, oversized prefix, garbage, replay and a truncated
    frame: each is NACKed with its reason or dropped, counted, and stores nothing, while
    a neighbouring concentrator keeps uploading unaffected."""
    reasons = ("bad_tag", "unknown_concentrator", "oversize", "not_authenticated", "truncated")
    before = {r: _errors(r) for r in reasons}
    good_module = neighbour.modules[0]
    async with (
        running_ingest(own_nats.url, site.database_url, ingest_idle_timeout_s=2) as ingest,
        running_persister(own_nats.url, site.database_url),
        ingest.client(neighbour.serial, neighbour.key, boot=11) as good,
    ):

        async def upload_steadily() -> None:
            for hour in range(40):
                await good.upload([PulseRecord(good_module, 0, T0 + hour * HOUR, hour)])
                await asyncio.sleep(0.01)

        async def misbehave() -> list[NackReason | str]:
            # one after another: a new session of a concentrator replaces its older one
            cases = (
                _wrong_key,
                _wrong_key_hello,
                _unknown_concentrator,
                _oversized_prefix,
                _garbage,
                _replayed_from_another_session,
                _truncated,
            )
            return [await case(ingest, site) for case in cases]

        _, outcomes = await asyncio.gather(upload_steadily(), misbehave())
        async with asyncio.timeout(15):
            await good.flush()
        stored = await wait_for_rows(
            site.database_url,
            f"select count(*) from pulse_readings where module_serial = {good_module}",
            40,
        )
        hostile = await wait_for_rows(
            site.database_url,
            f"select count(*) from pulse_readings where input = {BAD_INPUT}",
            1,
            timeout_s=1,
        )
    assert outcomes == [
        NackReason.NOT_AUTHENTICATED,
        NackReason.BAD_TAG,
        NackReason.UNKNOWN_CONCENTRATOR,
        NackReason.OVERSIZE,
        NackReason.OVERSIZE,
        NackReason.BAD_TAG,
        "closed",
    ]
    assert (stored, hostile) == (40, 0)
    assert good.stats.rejected == []
    assert {r: _errors(r) - before[r] for r in reasons} == {
        "bad_tag": 2,
        "unknown_concentrator": 1,
        "oversize": 2,
        "not_authenticated": 1,
        "truncated": 1,
    }


async def test_bad_body_with_good_tag_is_nacked_and_session_survives(
    own_nats: EmbeddedNats, site: Any
) -> None:
    """A well-tagged UPLOAD whose records do not parse gets NACK BAD_FORMAT for its
    sequence, and the same connection then still answers PING and ACKs good uploads."""
    async with running_ingest(own_nats.url, site.database_url) as ingest:
        raw = RawConcentrator(site.serial, ingest.port, site.key)
        await raw.handshake(boot=21)
        raw.send(Upload(b"\x01\x00\x02\x00"), seq=3)  # a PULSE section cut short
        refused = (await raw.read()).body
        raw.send(Ping(), seq=4)
        pong = (await raw.read()).body
        raw.send(Upload.of([PulseRecord(site.modules[1], 0, T0, 1)]), seq=5)
        acked = (await raw.read()).body
        await raw.close()
    assert (refused, pong, acked) == (
        Nack(3, NackReason.BAD_FORMAT),
        Ping(reply=True),
        Ack(5),
    )
