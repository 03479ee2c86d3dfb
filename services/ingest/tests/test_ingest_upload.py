"""Uploads travel concentrator -> ingest -> JetStream -> persister -> PostgreSQL intact,
and a resent batch is stored once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from balans_devstack.nats_server import EmbeddedNats
from balans_ingest.testing import (
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    wait_for_rows,
)
from balans_protocol import subjects
from balans_protocol.frames import Ack, Upload
from balans_protocol.messages import ReadingsStored
from balans_protocol.records import (
    EventRecord,
    PulseRecord,
    StatusRecord,
    TemperatureRecord,
)

HOUR = 3600
T0 = recent_day()


def _at(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


async def test_upload_lands_with_the_right_values(own_nats: EmbeddedNats, site: Any) -> None:
    """Every record type arrives in its readings table with the values sent."""
    module = site.modules[0]
    records = [
        PulseRecord(module, 0, T0 + HOUR, 1234),
        PulseRecord(module, 1, T0 + HOUR, 99),
        TemperatureRecord(module, T0 + HOUR, 7012, 5120),
        StatusRecord(module, T0 + HOUR, 3550, -87, 3, site.modules[1], True, 0x0102),
        EventRecord(module, T0 + HOUR + 17, 42),
    ]
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        events: asyncio.Queue[ReadingsStored] = asyncio.Queue()

        async def on_event(msg: object) -> None:
            events.put_nowait(ReadingsStored.model_validate_json(msg.data))  # type: ignore[attr-defined]

        await ingest.nc.subscribe(subjects.readings_stored(site.building_id), cb=on_event)
        async with ingest.client(site.serial, site.key) as client:
            await client.upload(records)
            async with asyncio.timeout(10):
                await client.flush()
        assert await wait_for_rows(site.database_url, "select count(*) from module_events", 1)
        async with asyncio.timeout(10):
            event = await events.get()
    conn = await asyncpg.connect(site.database_url)
    try:
        pulses = await conn.fetch("select * from pulse_readings order by input")
        temperature = await conn.fetchrow("select * from temperature_readings")
        status = await conn.fetchrow("select * from module_status")
        event_row = await conn.fetchrow("select * from module_events")
    finally:
        await conn.close()
    assert [(r["module_serial"], r["input"], r["ts"], r["count"]) for r in pulses] == [
        (module, 0, _at(T0 + HOUR), 1234),
        (module, 1, _at(T0 + HOUR), 99),
    ]
    assert tuple(temperature.values()) == (module, _at(T0 + HOUR), 7012, 5120)
    assert tuple(status.values()) == (
        module,
        _at(T0 + HOUR),
        3550,
        -87,
        3,
        site.modules[1],
        True,
        0x0102,
    )
    assert tuple(event_row.values()) == (module, _at(T0 + HOUR + 17), 42)
    assert event == ReadingsStored(
        building_id=site.building_id, hour_from=_at(T0 + HOUR), hour_to=_at(T0 + HOUR), rows=5
    )


async def test_resent_frame_is_stored_once(own_nats: EmbeddedNats, site: Any) -> None:
    """The same UPLOAD (same boot, same seq) sent twice, and again after a reconnect, is
    ACKed every time and stored once; a new boot reusing the seq is new data."""
    module = site.modules[1]
    batch = Upload.of([PulseRecord(module, 2, T0 + 5 * HOUR, 500)])
    later = Upload.of([PulseRecord(module, 2, T0 + 6 * HOUR, 510)])
    duplicates_before = REGISTRY.get_sample_value("balans_ingest_duplicate_uploads_total") or 0
    count_sql = f"select count(*) from pulse_readings where module_serial = {module}"
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        raw = RawConcentrator(site.serial, ingest.port, site.key)
        await raw.handshake(boot=5)  # seq 1 and 2
        raw.send(batch, seq=3)
        raw.send(batch, seq=3)
        acks = [(await raw.read()).body for _ in range(2)]
        await raw.close()
        again = RawConcentrator(site.serial, ingest.port, site.key)
        await again.handshake(boot=5, seq=4)  # the same boot goes on counting
        again.send(batch, seq=3)
        acks.append((await again.read()).body)
        await again.close()
        rebooted = RawConcentrator(site.serial, ingest.port, site.key)
        await rebooted.handshake(boot=6)
        rebooted.send(later, seq=3)
        acks.append((await rebooted.read()).body)
        await rebooted.close()
        assert await wait_for_rows(site.database_url, count_sql, 2) == 2
    assert acks == [Ack(3)] * 4
    assert await wait_for_rows(site.database_url, count_sql, 3, timeout_s=0.5) == 2
    duplicates = REGISTRY.get_sample_value("balans_ingest_duplicate_uploads_total") or 0
    assert duplicates - duplicates_before == 2
