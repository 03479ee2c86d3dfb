"""From an empty database to stored readings through provisioning alone: a building
imported over the REST API, its concentrator key read once, the reference concentrator
client uploading with that key to a real ingest over TCP, the readings stored; then a
key rotation: the old key works during the overlap and is NACKed after it. And to the
bill: another building imported the same way uploads the last day of a month, allocation
and balance run on it, and billing closes the month with one invoice per account."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from api_harness import signed_in_api
from ingest_harness import (
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    running_service,
    wait_for_rows,
)

from balans_allocation.__main__ import serve as serve_allocation
from balans_allocation.settings import AllocationSettings
from balans_balance.__main__ import serve as serve_balance
from balans_balance.settings import BalanceSettings
from balans_billing.__main__ import serve as serve_billing
from balans_billing.periods import month_bounds
from balans_billing.settings import BillingSettings
from balans_core.nats import connect_nats
from balans_db.topology import SiteSpec, city_document, plan_equipment, regular_building
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.auth import UNAUTHENTICATED_KEY, new_nonce
from balans_protocol.errors import NackReason
from balans_protocol.frames import FrameType, Hello, Nack, decode_frame, peek_header
from balans_protocol.messages import TopologyChanged
from balans_protocol.records import PulseRecord

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "provisioning-e2e-passphrase"
SPEC = regular_building(
    code="e2e-1a",
    name="Provisioned block",
    address="str. Nouă 5",
    site=SiteSpec("e2e-site", "E2E", "str. Nouă 5", 47.01, 28.86),
    layout="1a",
    floors=2,
    flats_per_floor=(2,),
    risers_per_entrance=(2,),
    index=77,
)
T0 = recent_day()
MONTHLY = regular_building(
    code="e2e-month",
    name="Billed block",
    address="str. Nouă 7",
    site=SiteSpec("e2e-site", "E2E", "str. Nouă 5", 47.01, 28.86),
    layout="1a",
    floors=2,
    flats_per_floor=(2,),
    risers_per_entrance=(2,),
    index=78,
)
TZ = "Europe/Chisinau"  # the site's (SiteSpec's default time zone)


def _last_closed_month() -> tuple[datetime, datetime]:
    """The latest local month that ended at least 6 hours ago (its readings and the hours
    after its end lie in the past)."""
    local = (datetime.now(UTC) - timedelta(hours=6)).astimezone(ZoneInfo(TZ))
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return month_bounds(year, month, TZ)


@pytest.fixture(scope="module")
async def api(database_url: str, module_nats_url: str) -> AsyncIterator[httpx.AsyncClient]:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("select count(*) from buildings") == 0
    finally:
        await conn.close()
    async with signed_in_api(database_url, module_nats_url, "op", PASSWORD) as http:
        yield http


async def _finished(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            job: dict[str, Any] = (await api.get(f"/api/v1/imports/{job_id}")).json()
            if job["status"] in ("succeeded", "failed"):
                return job
            await asyncio.sleep(0.05)


async def _hello_answer(port: int, key: bytes) -> NackReason | None:
    """None when a HELLO under ``key`` completes the handshake, else the NACK reason."""
    raw = RawConcentrator(SPEC.concentrator_serial, port, key)
    await raw.connect()
    try:
        raw.send(Hello(1, new_nonce()), seq=1)
        answer = await raw.read_raw()
        if peek_header(answer).type is FrameType.HELLO:
            decode_frame(answer, key)  # the server's challenge, tagged with the device key
            return None
        frame = decode_frame(answer, UNAUTHENTICATED_KEY)
        assert isinstance(frame.body, Nack), frame
        return frame.body.reason
    finally:
        await raw.close()


async def test_imported_building_uploads_and_its_key_rotates(
    api: httpx.AsyncClient, database_url: str, module_nats_url: str
) -> None:
    events: asyncio.Queue[TopologyChanged] = asyncio.Queue()
    listener = await connect_nats(module_nats_url, "listener")

    async def on_event(msg: Any) -> None:
        events.put_nowait(TopologyChanged.model_validate_json(msg.data))

    await listener.subscribe(subjects.TOPOLOGY_CHANGED_ALL, cb=on_event)
    started = await api.post("/api/v1/imports", json=city_document([SPEC]))
    assert started.status_code == 202, started.text
    job = await _finished(api, started.json()["id"])
    assert job["status"] == "succeeded", job
    keys = job["concentrator_keys"]
    assert list(keys) == [str(SPEC.concentrator_serial)]
    key = bytes.fromhex(keys[str(SPEC.concentrator_serial)])
    assert (await api.get(f"/api/v1/imports/{job['id']}")).json()["concentrator_keys"] is None
    async with asyncio.timeout(10):
        event = await events.get()
    assert event.building_code == SPEC.code
    assert event.changes["meters"]["create"] == len(plan_equipment(SPEC).meters)
    await listener.close()

    building = (await api.get(f"/api/v1/provisioning/buildings/{SPEC.code}")).json()
    module = building["meters"][0]["channel"]["module"]
    async with (
        running_ingest(module_nats_url, database_url) as ingest,
        running_persister(module_nats_url, database_url),
    ):
        async with ingest.client(SPEC.concentrator_serial, key) as client:
            await client.upload([PulseRecord(module, 0, T0 + 3600, 4321)])
            async with asyncio.timeout(10):
                await client.flush()
        assert (
            await wait_for_rows(
                database_url, "select count(*) from pulse_readings where count = 4321", 1
            )
            == 1
        )

        overlap_h = 4 / 3600
        rotated = await api.post(
            f"/api/v1/provisioning/concentrators/{SPEC.concentrator_serial}/rotate-key",
            json={"overlap_hours": overlap_h},
        )
        assert rotated.status_code == 200, rotated.text
        new_key = bytes.fromhex(rotated.json()["key"])
        until = datetime.fromisoformat(rotated.json()["previous_key_valid_until"])
        assert new_key != key
        # during the overlap both keys are accepted
        assert await _hello_answer(ingest.port, key) is None
        assert await _hello_answer(ingest.port, new_key) is None
        async with ingest.client(SPEC.concentrator_serial, new_key, boot=2) as client:
            await client.upload([PulseRecord(module, 0, T0 + 7200, 4400)])
            async with asyncio.timeout(10):
                await client.flush()
        assert (
            await wait_for_rows(
                database_url, "select count(*) from pulse_readings where count = 4400", 1
            )
            == 1
        )
        # after it, the old key is refused and the new one still works
        while datetime.now(UTC) <= until:  # noqa: ASYNC110 - waiting for the overlap to end
            await asyncio.sleep(0.2)
        assert await _hello_answer(ingest.port, key) is NackReason.BAD_TAG
        assert await _hello_answer(ingest.port, new_key) is None

    # a retired building's concentrator is unknown (to an ingest whose key cache has not
    # kept it: a fresh one here)
    retired = await api.delete(f"/api/v1/provisioning/buildings/{SPEC.code}")
    assert retired.status_code == 200, retired.text
    async with running_ingest(module_nats_url, database_url) as fresh:
        assert await _hello_answer(fresh.port, new_key) is NackReason.UNKNOWN_CONCENTRATOR


async def test_imported_building_is_allocated_balanced_and_billed(
    api: httpx.AsyncClient, database_url: str, module_nats_url: str
) -> None:
    started = await api.post("/api/v1/imports", json=city_document([MONTHLY]))
    assert started.status_code == 202, started.text
    job = await _finished(api, started.json()["id"])
    assert job["status"] == "succeeded", job
    key = bytes.fromhex(job["concentrator_keys"][str(MONTHLY.concentrator_serial)])
    building = (await api.get(f"/api/v1/provisioning/buildings/{MONTHLY.code}")).json()
    accounts = {a["number"] for a in building["accounts"] if a.get("flat") is not None}
    assert accounts
    start, end = _last_closed_month()
    # the month's last four days (balance judges a group from 72 hours of data on) and two
    # hours past its end, every input counting: the building meter 40 pulses an hour, each
    # flat meter 3 to 6
    hours = [end - timedelta(hours=96 - h) for h in range(99)]
    channels = [
        (
            m["channel"]["module"],
            m["channel"]["input"],
            40 if m["role"] == "building" else 3 + n % 4,
        )
        for n, m in enumerate(building["meters"])
    ]
    records = [
        PulseRecord(module, input_, int(t.timestamp()), 1000 + rate * k)
        for k, t in enumerate(hours)  # hour by hour, as a concentrator sends its rounds
        for module, input_, rate in channels
    ]
    urls = {"database_url": database_url, "nats_url": module_nats_url}
    async with (
        running_ingest(module_nats_url, database_url) as ingest,
        running_persister(module_nats_url, database_url),
        running_service(
            serve_allocation, AllocationSettings(**urls, allocation_lateness_hours=1), "allocation"
        ),
        running_service(serve_balance, BalanceSettings(**urls), "balance"),
        running_service(
            lambda ctx: serve_billing(ctx, ctx.settings),
            BillingSettings(**urls, demo_tariffs=True, period_check_interval_s=0.2),
            "billing",
        ),
        ingest.client(MONTHLY.concentrator_serial, key) as client,
    ):
        await client.upload(records)
        async with asyncio.timeout(20):
            await client.flush()
        conn = await asyncpg.connect(database_url)
        try:
            building_id = await conn.fetchval(
                "select id from buildings where code = $1", MONTHLY.code
            )

            async def invoiced() -> list[Any]:
                return await conn.fetch(
                    """select a.number from invoices i join accounts a on a.id = i.account_id
                       where i.building_id = $1 and i.kind = 'invoice'
                         and i.period_start = $2 and i.period_end = $3""",
                    building_id, start, end,
                )  # fmt: skip

            async def balanced() -> bool:
                return bool(
                    await conn.fetchval(
                        """select count(*) from imbalance_series s
                           join balance_groups g on g.id = s.group_id
                           where g.building_id = $1 and s.resolution = 'hour'""",
                        building_id,
                    )
                )

            await eventually("the month invoiced", invoiced, timeout_s=90)
            await eventually("the building balanced", balanced, timeout_s=60)
            heat = await conn.fetchval(
                """select sum(total_kwh) from heat_allocation
                   where building_id = $1 and hour >= $2 and hour < $3""",
                building_id, start, end,
            )  # fmt: skip
            numbers = [r["number"] for r in await invoiced()]
        finally:
            await conn.close()
    assert heat is not None
    assert heat > 0
    assert sorted(numbers) == sorted(accounts)  # one invoice per account, none twice
