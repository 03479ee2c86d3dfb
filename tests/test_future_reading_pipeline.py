"""Issue 22, finding 1, end to end: a concentrator that authenticates correctly sends one
reading dated two years ahead among good ones. Ingest NACKs it with the reason and counts
it, nothing of it is stored, allocation's watermark stays in the present and billing
closes and invoices no month: the good readings flow on as usual."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from ingest_harness import RawConcentrator, running_ingest, running_persister, running_service
from prometheus_client import REGISTRY

from balans_allocation.__main__ import serve as serve_allocation
from balans_allocation.settings import AllocationSettings
from balans_billing.__main__ import serve as serve_billing
from balans_billing.settings import BillingSettings
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_devstack.eventually import eventually
from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.errors import NackReason
from balans_protocol.frames import Ack, Nack, Upload
from balans_protocol.records import PulseRecord

HOUR = 3600
DEVICE_KEY = bytes(range(32, 64))
SITE = SiteSpec("t-future", "Future", "str. Viitor 1", 47.0, 28.8)


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JetStream server of this module alone (its streams are consumed here)."""
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("futurenats")))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _closer_passes() -> float:
    return (
        REGISTRY.get_sample_value("balans_billing_period_closer_passes_total", {"outcome": "ok"})
        or 0.0
    )


async def test_a_reading_two_years_ahead_changes_nothing(database_url: str, own_nats: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        spec = regular_building(
            code="t-future-1", name="Future block", address="str. Viitor 1", site=SITE,
            layout="1a", floors=2, flats_per_floor=(2,), risers_per_entrance=(2,), index=61,
            multi_utility_every=1000,
        )  # fmt: skip
        building_id = await write_building(conn, spec, KeyVault(), device_key=DEVICE_KEY)
        assert building_id is not None
        channels = await conn.fetch(
            """select c.module_serial, c.input from channels c
               join meters m on m.id = c.meter_id where m.building_id = $1""",
            building_id,
        )
    finally:
        await conn.close()
    now_hour = int(time.time()) // HOUR * HOUR
    good = [
        PulseRecord(c["module_serial"], c["input"], now_hour - h * HOUR, 1000 - h)
        for c in channels
        for h in range(6, 0, -1)
    ]
    ahead = PulseRecord(
        channels[0]["module_serial"], channels[0]["input"], now_hour + 730 * 24 * HOUR, 9
    )
    refused_before = (
        REGISTRY.get_sample_value("balans_ingest_refused_uploads_total", {"check": "future"}) or 0.0
    )
    urls = {"database_url": database_url, "nats_url": own_nats}
    async with (
        running_ingest(own_nats, database_url) as ingest,
        running_persister(own_nats, database_url),
        running_service(serve_allocation, AllocationSettings(**urls), "allocation"),
        running_service(
            lambda ctx: serve_billing(ctx, ctx.settings),
            BillingSettings(**urls, period_check_interval_s=0.1),
            "billing",
        ),
    ):
        raw = RawConcentrator(spec.concentrator_serial, ingest.port, DEVICE_KEY)
        await raw.handshake(boot=1)
        raw.send(Upload.of(good), seq=2)
        first = (await raw.read()).body
        raw.send(Upload.of([good[-1], ahead]), seq=3)
        second = (await raw.read()).body
        await raw.close()
        conn = await asyncpg.connect(database_url)
        try:

            async def watermark() -> datetime | None:
                return await conn.fetchval(
                    "select complete_until from allocation_watermarks where building_id = $1",
                    building_id,
                )

            await eventually("the good hours allocated", lambda: watermark(), timeout_s=60)
            passes = _closer_passes()
            await eventually("two closer passes", lambda: _closer_passes() >= passes + 2)
            mark = await watermark()
            latest = await conn.fetchval(
                """select max(ts) from pulse_readings p join channels c
                   on c.module_serial = p.module_serial join meters m on m.id = c.meter_id
                   where m.building_id = $1""",
                building_id,
            )
            closed = await conn.fetchval(
                "select count(*) from billing_period_closures where building_id = $1", building_id
            )
            invoices = await conn.fetchval(
                "select count(*) from invoices where building_id = $1", building_id
            )
        finally:
            await conn.close()
    assert (first, second) == (Ack(2), Nack(3, NackReason.IMPLAUSIBLE_TIME))
    refused = REGISTRY.get_sample_value("balans_ingest_refused_uploads_total", {"check": "future"})
    assert (refused or 0.0) - refused_before == 1
    assert latest == datetime.fromtimestamp(now_hour - HOUR, UTC)
    assert mark is not None
    assert mark <= datetime.now(UTC)
    assert (closed, invoices) == (0, 0)
