"""The persister's ends for bad UPLOAD messages (through balans_core.consumer): a message
whose headers do not decode is terminated and counted invalid; an implausible one is
refused into the dead-letter stream with the reason, where an operator finds it; a good
message fetched in the same batch is stored."""

from __future__ import annotations

import time
from typing import Any

from ingest_harness import running_ingest, running_persister, wait_for_rows
from prometheus_client import REGISTRY

from balans_core import deadletter
from balans_devstack.eventually import eventually
from balans_devstack.nats_server import EmbeddedNats
from balans_protocol import subjects
from balans_protocol.records import PulseRecord, encode_records
from balans_protocol.uploads import UploadHeaders

HOUR = 3600
NOW_HOUR = int(time.time()) // HOUR * HOUR


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "balans_persister_messages_total", {"consumer": "persister", "outcome": outcome}
    )
    return value or 0.0


async def test_bad_uploads_end_termed_or_dead_lettered(own_nats: EmbeddedNats, site: Any) -> None:
    module = site.modules[0]
    invalid_before, dead_before = _count("invalid"), _count("dead_letter")
    headers = UploadHeaders(
        concentrator=site.serial,
        building_id=site.building_id,
        boot=31,
        seq=1,
        received_unix=time.time(),
    ).to_headers()
    async with running_ingest(own_nats.url, site.database_url) as ingest:
        js = ingest.nc.jetstream()
        subject = subjects.upload(site.serial)
        await js.publish(subject, b"\x00junk", headers={"Nats-Msg-Id": "dl-test-junk"})
        future = encode_records([PulseRecord(module, 3, NOW_HOUR + 400 * 24 * HOUR, 1)])
        await js.publish(subject, future, headers=headers | {"Nats-Msg-Id": "dl-test-future"})
        good = encode_records([PulseRecord(module, 3, NOW_HOUR - HOUR, 7)])
        await js.publish(subject, good, headers=headers | {"Nats-Msg-Id": "dl-test-good"})
        async with running_persister(own_nats.url, site.database_url):
            sql = (
                f"select count(*) from pulse_readings where module_serial = {module} and input = 3"
            )
            assert await wait_for_rows(site.database_url, sql, 1) == 1
            await eventually("both bad ones settled", lambda: _count("dead_letter") > dead_before)
        letters = await deadletter.list_all(js, "persister")
    assert _count("invalid") - invalid_before == 1
    assert _count("dead_letter") - dead_before == 1
    (letter,) = [dl for dl in letters if dl.msg_id == "dl-test-future"]
    assert letter.consumer == "persister"
    assert letter.subject == subject
    assert letter.deliveries == 1  # refused at once, not after max_deliveries
    assert letter.error.startswith("PermanentError: ")
    assert f"module {module} dated" in letter.error  # the refusal says what and why
    assert letter.data == future
