"""Uploads travel concentrator -> ingest -> JetStream -> persister -> PostgreSQL intact,
and a resent batch is stored once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from ingest_harness import (
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    wait_for_rows,
)
from prometheus_client import REGISTRY

from balans_devstack.nats_server import EmbeddedNats
from balans_protocol import subjects
from balans_protocol.client import ConcentratorClient
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
    duplicates_before = {kind: _duplicates(site.serial, kind) for kind in ("resend", "reset")}
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
    duplicates = {
        kind: _duplicates(site.serial, kind) - duplicates_before[kind] for kind in duplicates_before
    }
    assert duplicates == {"resend": 2, "reset": 0}


async def test_restarts_never_reuse_message_ids(
    own_nats: EmbeddedNats, site: Any, tmp_path: Path
) -> None:
    """Three starts of the reference client within the hour, each taking its boot counter
    from the state file: every batch of every start is stored. The same restart with a
    boot counter it had used is ACKed but lost, and ingest counts it as a reset."""
    module = site.modules[2]
    boot_file = tmp_path / "concentrator" / "boot"
    resets_before = _duplicates(site.serial, "reset")

    async def start(hours: range, boot: int | None = None) -> int:
        options: dict[str, Any] = {"reconnect_delay_s": 0.1, "resend_delay_s": 0.2}
        if boot is None:
            client = ConcentratorClient.from_boot_file(
                site.serial, site.key, "127.0.0.1", ingest.port, boot_file, **options
            )
        else:
            client = ConcentratorClient(
                site.serial, site.key, "127.0.0.1", ingest.port, boot=boot, **options
            )
        async with client:
            for hour in hours:
                await client.upload([PulseRecord(module, 3, T0 + hour * HOUR, hour)])
            async with asyncio.timeout(10):
                await client.flush()
        return client.boot

    def stored(hours: range) -> Any:
        sql = f"""select count(*) from pulse_readings where module_serial = {module}
            and ts >= to_timestamp({T0 + hours.start * HOUR})
            and ts <= to_timestamp({T0 + (hours.stop - 1) * HOUR})"""
        return wait_for_rows(site.database_url, sql, len(hours), timeout_s=10)

    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        boots = [await start(range(10 * n, 10 * n + 5)) for n in range(3)]
        kept = [await stored(range(10 * n, 10 * n + 5)) for n in range(3)]
        await start(range(40, 45), boot=boots[-1])  # a start that forgot its counter
        lost = await stored(range(40, 45))
    assert boots == sorted(set(boots))
    assert kept == [5, 5, 5]
    assert lost == 0
    assert _duplicates(site.serial, "reset") - resets_before == 5


def _duplicates(serial: int, kind: str) -> float:
    labels = {"concentrator": str(serial), "kind": kind}
    return REGISTRY.get_sample_value("balans_ingest_duplicate_uploads_total", labels) or 0.0


async def test_a_reused_boot_counter_is_told_by_a_fresh_ingest_too(
    own_nats: EmbeddedNats, site: Any
) -> None:
    """An ingest instance that never saw the earlier start still tells the reset: the
    duplicates are batches first sent in this session (above its proof), not resends."""
    module = site.modules[2]
    resets_before = _duplicates(site.serial, "reset")
    resends_before = _duplicates(site.serial, "resend")

    async def start(port: int, hours: range) -> None:
        client = ConcentratorClient(site.serial, site.key, "127.0.0.1", port, boot=4242)
        async with client:
            async with asyncio.timeout(10):
                await client.wait_connected()  # so every batch comes after the proof
            for hour in hours:
                await client.upload([PulseRecord(module, 4, T0 + hour * HOUR, hour)])
            async with asyncio.timeout(10):
                await client.flush()

    async with running_ingest(own_nats.url, site.database_url) as ingest:
        await start(ingest.port, range(60, 65))
    async with running_ingest(own_nats.url, site.database_url) as restarted:
        await start(restarted.port, range(70, 75))
    assert _duplicates(site.serial, "reset") - resets_before == 5
    assert _duplicates(site.serial, "resend") - resends_before == 0
