"""From an empty database to stored readings through provisioning alone: a building
imported over the REST API, its concentrator key read once, the reference concentrator
client uploading with that key to a real ingest over TCP, the readings stored; then a
key rotation: the old key works during the overlap and is NACKed after it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from ingest_harness import (
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    wait_for_rows,
)

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_core.nats import connect_nats
from balans_db.topology import SiteSpec, city_document, plan_equipment, regular_building
from balans_devstack.nats_server import EmbeddedNats
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


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("nats")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def api(database_url: str, own_nats: EmbeddedNats) -> AsyncIterator[httpx.AsyncClient]:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("select count(*) from buildings") == 0
        await create_user(conn, "op", PASSWORD, "operator")
    finally:
        await conn.close()
    nc = await connect_nats(own_nats.url, "api-test")
    app = create_app(ApiSettings(database_url=database_url, login_rate="1000/minute"), nc)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": "op", "password": PASSWORD}
            )
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield http
    await nc.close()


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
    api: httpx.AsyncClient, database_url: str, own_nats: EmbeddedNats
) -> None:
    events: asyncio.Queue[TopologyChanged] = asyncio.Queue()
    listener = await connect_nats(own_nats.url, "listener")

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
        running_ingest(own_nats.url, database_url) as ingest,
        running_persister(own_nats.url, database_url),
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
    async with running_ingest(own_nats.url, database_url) as fresh:
        assert await _hello_answer(fresh.port, new_key) is NackReason.UNKNOWN_CONCENTRATOR
