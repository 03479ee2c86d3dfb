"""Readings a concentrator cannot have (dated in the future or before the horizon, or of a
module registered to another building) are refused at the edge with a NACK naming why,
counted, and never stored; the persister refuses them again in depth."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import numpy as np
from ingest_harness import RawConcentrator, running_ingest, running_persister, wait_for_rows
from prometheus_client import REGISTRY

from balans_devstack.nats_server import EmbeddedNats
from balans_ingest.plausibility import ModuleRegistry
from balans_protocol import subjects
from balans_protocol.errors import NackReason
from balans_protocol.frames import Ack, Nack, Upload
from balans_protocol.messages import ReadingsStored
from balans_protocol.records import PulseRecord, Record, TemperatureRecord, encode_records
from balans_protocol.uploads import UploadHeaders

HOUR = 3600
DAY = 24 * HOUR
NOW_HOUR = int(time.time()) // HOUR * HOUR
TWO_YEARS_AHEAD = NOW_HOUR + 730 * DAY
IN_1970 = 2 * DAY


def _refused(check: str, metric: str = "balans_ingest_refused_uploads_total") -> float:
    return REGISTRY.get_sample_value(metric, {"check": check}) or 0.0


async def _stored(database_url: str, module: int) -> list[tuple[int, datetime]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """select input, ts from pulse_readings where module_serial = $1
               union all select -1, ts from temperature_readings where module_serial = $1
               order by 1, 2""",
            module,
        )
    finally:
        await conn.close()
    return [(r["input"], r["ts"]) for r in rows]


async def _upload(raw: RawConcentrator, seq: int, records: Sequence[Record]) -> object:
    raw.send(Upload.of(list(records)), seq=seq)
    return (await raw.read()).body


async def test_future_and_ancient_readings_are_refused(own_nats: EmbeddedNats, site: Any) -> None:
    """One reading two years ahead (with a good one in the same batch) and one dated 1970
    are NACKed IMPLAUSIBLE_TIME and counted; nothing of either batch is stored, and the
    only ReadingsStored announced is the next good batch's (nothing can move a watermark)."""
    module = site.modules[2]
    good = PulseRecord(module, 3, NOW_HOUR - HOUR, 100)
    future_before, old_before = _refused("future"), _refused("too_old")
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        events: asyncio.Queue[ReadingsStored] = asyncio.Queue()

        async def on_event(msg: Any) -> None:
            events.put_nowait(ReadingsStored.model_validate_json(msg.data))

        await ingest.nc.subscribe(subjects.readings_stored(site.building_id), cb=on_event)
        raw = RawConcentrator(site.serial, ingest.port, site.key)
        await raw.handshake(boot=21)
        ahead = PulseRecord(module, 3, TWO_YEARS_AHEAD, 200)
        replies = [
            await _upload(raw, 2, [good, ahead]),
            await _upload(raw, 3, [TemperatureRecord(module, IN_1970, 7000, 5000)]),
            await _upload(raw, 4, [good]),  # the session goes on; this one is stored
        ]
        await raw.close()
        assert await wait_for_rows(
            site.database_url,
            f"select count(*) from pulse_readings where module_serial = {module}",
            1,
        )
        async with asyncio.timeout(10):
            event = await events.get()
    assert replies == [
        Nack(2, NackReason.IMPLAUSIBLE_TIME),
        Nack(3, NackReason.IMPLAUSIBLE_TIME),
        Ack(4),
    ]
    assert _refused("future") - future_before == 1
    assert _refused("too_old") - old_before == 1
    assert await _stored(site.database_url, module) == [
        (3, datetime.fromtimestamp(good.ts_unix, UTC))
    ]
    assert event.hour_to == datetime.fromtimestamp(good.ts_unix, UTC)
    assert events.empty()


async def test_clock_skew_allowance_accepts_a_fast_clock(own_nats: EmbeddedNats, site: Any) -> None:
    """A reading a few minutes ahead (a concentrator clock running fast) is stored."""
    module = site.modules[1]
    soon = int(time.time()) + 120
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        raw = RawConcentrator(site.serial, ingest.port, site.key)
        await raw.handshake(boot=22)
        reply = await _upload(raw, 2, [PulseRecord(module, 4, soon, 1)])
        await raw.close()
        sql = f"select count(*) from pulse_readings where module_serial = {module} and input = 4"
        assert await wait_for_rows(site.database_url, sql, 1) == 1
    assert reply == Ack(2)


async def test_modules_of_another_building_are_refused(
    own_nats: EmbeddedNats, site: Any, neighbour: Any
) -> None:
    """A concentrator writing a module of the neighbouring building, or a module nobody
    registered, is NACKed UNREGISTERED_MODULE and counted; neither reading is stored."""
    foreign, unknown = neighbour.modules[0], 4_000_000_001
    before = _refused("unregistered_module")
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        raw = RawConcentrator(site.serial, ingest.port, site.key)
        await raw.handshake(boot=23)
        mine = PulseRecord(site.modules[0], 5, NOW_HOUR - 2 * HOUR, 7)
        replies = [
            await _upload(raw, 2, [mine, PulseRecord(foreign, 0, NOW_HOUR - HOUR, 90_000)]),
            await _upload(raw, 3, [PulseRecord(unknown, 0, NOW_HOUR - HOUR, 1)]),
            await _upload(raw, 4, [mine]),
        ]
        await raw.close()
        sql = (
            "select count(*) from pulse_readings"
            f" where module_serial = {site.modules[0]} and input = 5"
        )
        assert await wait_for_rows(site.database_url, sql, 1) == 1
    assert replies == [
        Nack(2, NackReason.UNREGISTERED_MODULE),
        Nack(3, NackReason.UNREGISTERED_MODULE),
        Ack(4),
    ]
    assert _refused("unregistered_module") - before == 2
    assert await _stored(site.database_url, foreign) == []
    assert await _stored(site.database_url, unknown) == []


async def test_persister_refuses_what_ingest_would_have(own_nats: EmbeddedNats, site: Any) -> None:
    """Messages that reach JetStream without ingest's check (published before it existed,
    or by anything else) are terminated unstored and counted by the persister; a good
    message fetched with them is stored."""
    module = site.modules[1]  # inputs 0-2 (the fast clock test writes input 4)
    metric = "balans_persister_refused_messages_total"
    before = {
        check: _refused(check, metric) for check in ("future", "too_old", "unregistered_module")
    }
    bodies = [
        [PulseRecord(module, 0, TWO_YEARS_AHEAD, 1)],
        [PulseRecord(module, 1, IN_1970, 1)],
        [PulseRecord(4_000_000_002, 0, NOW_HOUR - HOUR, 1)],
        [PulseRecord(module, 2, NOW_HOUR - HOUR, 1)],
    ]
    async with running_ingest(own_nats.url, site.database_url) as ingest:
        js = ingest.nc.jetstream()
        for seq, records in enumerate(bodies, start=1):
            headers = UploadHeaders(
                concentrator=site.serial,
                building_id=site.building_id,
                boot=24,
                seq=seq,
                received_unix=time.time(),
            )
            await js.publish(
                subjects.upload(site.serial), encode_records(records), headers=headers.to_headers()
            )
        async with running_persister(own_nats.url, site.database_url):
            sql = (
                f"select count(*) from pulse_readings where module_serial = {module} and input = 2"
            )
            assert await wait_for_rows(site.database_url, sql, 1) == 1
    after = {check: _refused(check, metric) - before[check] for check in before}
    assert after == {"future": 1, "too_old": 1, "unregistered_module": 1}
    assert [i for i, _ in await _stored(site.database_url, module) if i < 3] == [2]


class _CountingDb:
    """A connection that counts the queries made through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.queries = 0

    async def fetch(self, query: str, *args: object) -> list:
        self.queries += 1
        return await self.conn.fetch(query, *args)


async def test_a_batch_loads_its_buildings_modules_in_one_query(site: Any, neighbour: Any) -> None:
    """The persister loads the registered modules of all the buildings of a batch with one
    query before checking their uploads one by one; each upload is then checked against
    its own building's modules (a neighbour's module is still foreign) without a query."""
    registry = ModuleRegistry(cache_s=60.0)
    conn = await asyncpg.connect(site.database_url)
    try:
        db = _CountingDb(conn)
        await registry.refresh(db, [site.building_id, neighbour.building_id])
        assert db.queries == 1
        mine = np.array(site.modules, dtype=np.int64)
        assert await registry.foreign(db, site.building_id, mine) == []
        theirs = np.array([site.modules[0], neighbour.modules[0]], dtype=np.int64)
        assert await registry.foreign(db, neighbour.building_id, theirs) == [site.modules[0]]
        await registry.refresh(db, [site.building_id])  # still fresh: nothing to load
        assert db.queries == 1
    finally:
        await conn.close()
