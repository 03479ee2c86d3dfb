"""Standard meters become readings: registration, decoding with sealed keys, idempotent upserts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from ingest_harness import running_persister

from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_devstack.nats_server import EmbeddedNats
from balans_mbus.readings import virtual_module_serial
from balans_mbus.sink import store_raw_telegrams
from balans_mbus.storage import register_meter
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_protocol.records import Medium, RawTelegramRecord, encode_records
from balans_protocol.uploads import UploadHeaders

KAMSTRUP_FULL = bytes.fromhex(
    "2E442D2C6767676730048D2039D1684020BCDB7803062C000043060000000314630000426C7F2A022D130001FF2100"
)
KAMSTRUP_COMPACT = bytes.fromhex(
    "25442D2C6767676730048D203AD2684020D81579E7F1D5902C00000000006300007F2A130000"
)
# Apator ELF 2 heat/cooling meter, AES mode 5 with this key: 144 kWh, 17.856 m3, 22.5/22.6 °C.
APATOR_KEY = bytes.fromhex("ACA5769E7902B8A770A7118C11D5F0F6")
APATOR_ENCRYPTED = bytes.fromhex(
    "6E44010670112724420D7A35006025B2F96D0306197B34C7E4E6F45F434FCB78BCBBE8837A2C253BEC3E95"
    "8B3BBBFBE6AE465214941AF544237DB8A69E6C4CE8DFB7A1F64860200BB2E995F1A4F501E7702E0A581576"
    "F60B58CBDA39E1F150F29E04D689C38FD6C430ABD05DD789E0"
)
RECEIVED = int(datetime(2026, 1, 15, 10, 37, tzinfo=UTC).timestamp())
HOUR = datetime(2026, 1, 15, 11, tzinfo=UTC)
VAULT = KeyVault()


def _kamstrup_plain(flow_centi_c: int, return_centi_c: int) -> bytes:
    """A plaintext CI 0x7A telegram of the registered Kamstrup: 44 kWh and two temperatures."""
    body = (
        bytes.fromhex("442D2C6767676730047A010000000406")
        + (44).to_bytes(4, "little")
        + b"\x02\x59"
        + flow_centi_c.to_bytes(2, "little")
        + b"\x02\x5d"
        + return_centi_c.to_bytes(2, "little")
    )
    return bytes([len(body)]) + body


def _raw(data: bytes, received: int = RECEIVED) -> RawTelegramRecord:
    return RawTelegramRecord(
        module=0, medium=Medium.WIRELESS_MBUS, received_unix=received, rssi_dbm=-70, data=data
    )


@pytest.fixture(scope="module")
async def world(database_url: str) -> AsyncIterator[tuple[int, int]]:
    """A small 1a block; two of its flats get an M-Bus heat meter each (Kamstrup, Apator)."""
    conn = await asyncpg.connect(database_url)
    site = SiteSpec(code="t", name="t", address="t", latitude=47.0, longitude=28.8)
    spec = regular_building(
        code="mbus-1a", name="t", address="t", site=site, layout="1a", floors=2,
        flats_per_floor=(2,), risers_per_entrance=(2,), index=7,
    )  # fmt: skip
    building_id = await write_building(conn, spec, VAULT)
    meter_ids = [
        await conn.fetchval(
            """insert into meters (serial, utility, kind, role, building_id, flat_id,
                                   pulse_weight, unit, pipe)
               select $1, 'heat', 'heat_meter', 'flat', building_id, id, 0.001, 'kWh', 'return'
               from flats where building_id = $2 and number = $3 returning id""",
            serial,
            building_id,
            flat,
        )
        for serial, flat in (("KAM-67676767", "1"), ("APA-24271170", "2"))
    ]
    await register_meter(
        conn, VAULT, meter_id=meter_ids[0], manufacturer="KAM", device_id="67676767"
    )
    await register_meter(
        conn, VAULT, meter_id=meter_ids[1], manufacturer="apa", device_id="24271170",
        key=APATOR_KEY,
    )  # fmt: skip
    yield building_id, meter_ids[0]
    await conn.close()


@pytest.fixture
async def conn(database_url: str, world: tuple[int, int]) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def _count(conn: asyncpg.Connection, manufacturer: str, device_id: str) -> int | None:
    return await conn.fetchval(
        "select count from pulse_readings where module_serial = $1 and ts = $2",
        virtual_module_serial(manufacturer, device_id),
        HOUR,
    )


async def test_full_and_compact_frames_become_a_register_reading(
    conn: asyncpg.Connection, world: tuple[int, int]
) -> None:
    """44 kWh at 0.001 kWh/pulse is count 44000 at the top of the next hour, via a channel."""
    stored = await store_raw_telegrams(conn, VAULT, [_raw(KAMSTRUP_FULL), _raw(KAMSTRUP_COMPACT)])
    assert stored.outcomes == {"stored": 2}
    assert stored.readings == {world[0]: [HOUR, HOUR]}
    assert await _count(conn, "KAM", "67676767") == 44000
    meter_id = await conn.fetchval(
        "select meter_id from channels where module_serial = $1 and input = 0",
        virtual_module_serial("KAM", "67676767"),
    )
    assert meter_id == world[1]


async def test_learnt_format_survives_for_later_batches(conn: asyncpg.Connection) -> None:
    """A compact frame alone decodes in a later batch: the format was saved in mbus_formats."""
    stored = await store_raw_telegrams(conn, VAULT, [_raw(KAMSTRUP_COMPACT)])
    assert stored.outcomes == {"stored": 1}
    assert await conn.fetchval("select count(*) from mbus_formats") >= 1


async def test_encrypted_meter_decodes_with_its_sealed_key(conn: asyncpg.Connection) -> None:
    """The AES key sealed at registration opens the mode 5 payload: energy and temperatures."""
    stored = await store_raw_telegrams(conn, VAULT, [_raw(APATOR_ENCRYPTED)])
    assert stored.outcomes == {"stored": 1}
    assert await _count(conn, "APA", "24271170") == 144000
    temperatures = await conn.fetchrow(
        "select supply_centi_c, return_centi_c from temperature_readings "
        "where module_serial = $1 and ts = $2",
        virtual_module_serial("APA", "24271170"),
        HOUR,
    )
    assert tuple(temperatures) == (2250, 2260)
    sealed = await conn.fetchval(
        "select key_ciphertext from mbus_meters where device_id = '24271170'"
    )
    assert APATOR_KEY not in sealed


async def test_resend_is_idempotent_and_unknown_meters_are_counted(
    conn: asyncpg.Connection,
) -> None:
    """Storing the same telegrams again changes nothing; a stranger's meter is only counted."""
    stranger = bytes.fromhex("19440186313737370408A0A1000059001C270100322DE413B415")
    stored = await store_raw_telegrams(conn, VAULT, [_raw(KAMSTRUP_FULL), _raw(stranger)])
    assert stored.outcomes == {"stored": 1, "unknown_meter": 1}
    assert await _count(conn, "KAM", "67676767") == 44000
    rows = await conn.fetchval(
        "select count(*) from pulse_readings where module_serial = $1",
        virtual_module_serial("KAM", "67676767"),
    )
    assert rows == 1


async def test_another_buildings_concentrator_cannot_write_the_meter(
    conn: asyncpg.Connection, world: tuple[int, int]
) -> None:
    """A telegram of a registered meter forwarded by a concentrator of another building is
    counted as other_building and stores nothing; its own building's forward is stored."""
    later = RECEIVED + 5 * 3600
    stored = await store_raw_telegrams(
        conn, VAULT, [_raw(KAMSTRUP_FULL, received=later)], [world[0] + 1000]
    )
    assert stored.outcomes == {"other_building": 1}
    assert stored.readings == {}
    rows = await conn.fetchval(
        "select count(*) from pulse_readings where module_serial = $1 and ts > $2",
        virtual_module_serial("KAM", "67676767"),
        HOUR + timedelta(hours=4),
    )
    assert rows == 0
    own = await store_raw_telegrams(conn, VAULT, [_raw(KAMSTRUP_FULL, received=later)], [world[0]])
    assert own.outcomes == {"stored": 1}


async def test_a_meter_wired_to_a_module_is_not_registered_twice(
    conn: asyncpg.Connection, world: tuple[int, int]
) -> None:
    """Registering a meter that already has a channel is refused with the reason."""
    wired = await conn.fetchval(
        "select meter_id from channels c join meters m on m.id = c.meter_id "
        "where m.building_id = $1 and c.module_serial < 4294967296 limit 1",
        world[0],
    )
    with pytest.raises(ValueError, match="already read through module"):
        await register_meter(conn, VAULT, meter_id=wired, manufacturer="ZRI", device_id="00000001")
    assert await conn.fetchval("select count(*) from mbus_meters where device_id = '00000001'") == 0


async def test_persister_hook_stores_mbus_readings(
    conn: asyncpg.Connection, world: tuple[int, int]
) -> None:
    """The ingest persister's RAW_TELEGRAM hook writes through balans_mbus on its connection."""
    from balans_ingest.persister.raw_telegrams import store_raw_telegrams as persister_hook
    from balans_protocol.uploads import UploadHeaders

    later = RECEIVED + 3600  # 11:37 -> the 12:00 reading
    headers = UploadHeaders(
        concentrator=1_000_007, building_id=world[0], boot=1, seq=1, received_unix=later
    )
    async with conn.transaction():
        await persister_hook(conn, [(headers, _raw(KAMSTRUP_FULL, received=later))])
    count = await conn.fetchval(
        "select count from pulse_readings where module_serial = $1 and ts = $2",
        virtual_module_serial("KAM", "67676767"),
        datetime(2026, 1, 15, 12, tzinfo=UTC),
    )
    assert count == 44000


async def _temperatures(conn: asyncpg.Connection, hour: datetime) -> tuple[int, int]:
    row = await conn.fetchrow(
        "select supply_centi_c, return_centi_c from temperature_readings "
        "where module_serial = $1 and ts = $2",
        virtual_module_serial("KAM", "67676767"),
        hour,
    )
    return (row["supply_centi_c"], row["return_centi_c"])


async def test_temperature_is_the_hourly_mean_of_samples_across_batches(
    conn: asyncpg.Connection,
) -> None:
    """Two samples of one hour in two batches give their mean; a resent sample counts once."""
    start = int(datetime(2026, 2, 3, 9, 10, tzinfo=UTC).timestamp())
    hour = datetime(2026, 2, 3, 10, tzinfo=UTC)
    first = _raw(_kamstrup_plain(7000, 5000), received=start)
    await store_raw_telegrams(conn, VAULT, [first])
    assert await _temperatures(conn, hour) == (7000, 5000)
    await store_raw_telegrams(conn, VAULT, [_raw(_kamstrup_plain(6001, 4000), start + 1800)])
    assert await _temperatures(conn, hour) == (6501, 4500)
    await store_raw_telegrams(conn, VAULT, [first])
    assert await _temperatures(conn, hour) == (6501, 4500)
    next_hour = _raw(_kamstrup_plain(5000, 3000), received=start + 3600)
    await store_raw_telegrams(conn, VAULT, [next_hour])
    assert await _temperatures(conn, hour + timedelta(hours=1)) == (5000, 3000)
    assert await _temperatures(conn, hour) == (6501, 4500)


async def test_persister_announces_hours_of_mbus_only_batches(
    database_url: str, world: tuple[int, int], tmp_path: Path
) -> None:
    """An upload holding only M-Bus telegrams gets a ReadingsStored covering their hours."""
    # JetStream of this test alone: the persister's consumer must see only this upload.
    own_nats = EmbeddedNats(tmp_path)
    own_nats.start()
    try:
        event = await _announced(database_url, world[0], own_nats.url)
    finally:
        own_nats.stop()
    assert event == ReadingsStored(
        building_id=world[0],
        hour_from=datetime(2026, 3, 1, 6, tzinfo=UTC),
        hour_to=datetime(2026, 3, 1, 8, tzinfo=UTC),
        rows=4,
    )


async def _announced(database_url: str, building_id: int, nats_url: str) -> ReadingsStored:
    """Upload two M-Bus telegrams (no pulse records) through the persister; its event."""
    early = int(datetime(2026, 3, 1, 5, 20, tzinfo=UTC).timestamp())
    records = [
        _raw(_kamstrup_plain(7000, 5000), received=early),  # pulse + temperature at 06:00
        _raw(APATOR_ENCRYPTED, received=early + 2 * 3600),  # pulse + temperature at 08:00
    ]
    headers = UploadHeaders(
        concentrator=1_000_007, building_id=building_id, boot=1, seq=1, received_unix=early
    )
    old_enough = (datetime.now(UTC) - datetime.fromtimestamp(early, UTC)).days + 30
    async with running_persister(nats_url, database_url, readings_horizon_days=old_enough):
        events: asyncio.Queue[ReadingsStored] = asyncio.Queue()

        async def on_event(msg: object) -> None:
            events.put_nowait(ReadingsStored.model_validate_json(msg.data))  # type: ignore[attr-defined]

        nc = await connect_nats(nats_url, "mbus-persister-test")
        try:
            await nc.subscribe(subjects.readings_stored(building_id), cb=on_event)
            await nc.jetstream().publish(
                subjects.upload(headers.concentrator),
                encode_records(records),
                headers=headers.to_headers(),
            )
            async with asyncio.timeout(10):
                return await events.get()
        finally:
            await nc.close()
