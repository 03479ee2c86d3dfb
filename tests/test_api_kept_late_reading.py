"""A late reading into a closed month changes the profile the api serves from its kept
answers: real NATS, real PostgreSQL, allocation's service and the api as its own process
over TCP. Once the api has handled allocation's announcement of the recomputed hours, the
old answer is never served again, and the month is kept again with the new figures."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import asyncpg
import httpx
import nats
import pytest
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

from balans_allocation.__main__ import serve
from balans_allocation.allocator import on_readings_stored
from balans_api.calendar import this_month
from balans_api.users import create_user
from balans_core.service import ServiceContext
from balans_devstack.eventually import eventually
from balans_devstack.processes import free_port, service_process
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored
from balans_protocol.streams import ensure_streams

from .test_allocation_pipeline import LATENESS, LOOKAROUND, _building, _channels, _seed_readings
from .test_allocation_pipeline import _settings as allocation_settings

H = datetime(2026, 11, 10, tzinfo=UTC)  # inside November, a closed month
HOUR = timedelta(hours=1)
NOVEMBER = date(2026, 11, 1)
PASSWORD = "kept-answers-resident"
CONSUMER = "api-kept"  # the api's durable consumers: api-kept-readings, -allocation, ...


@pytest.fixture
def api_port(database_url: str, module_nats_url: str) -> Iterator[int]:
    """``python -m balans_api`` (one worker) keeping November's answers, its port."""
    tz_month = this_month("Europe/Chisinau")
    back = (tz_month.year - 2026) * 12 + tz_month.month - 11
    port = free_port()
    env = {
        **os.environ,
        "BALANS_DATABASE_URL": database_url,
        "BALANS_NATS_URL": module_nats_url,
        "BALANS_API_PORT": str(port),
        "BALANS_HEALTH_PORT": str(free_port()),
        "BALANS_API_WORKERS": "1",
        "BALANS_DEMO_USERS": "false",
        "BALANS_API_KEEP_MONTHS": str(back),
        "BALANS_API_KEEP_INTERVAL_S": "1",
        "BALANS_API_KEEP_SETTLE_S": "0",
        "BALANS_API_KEPT_CONSUMER": CONSUMER,
    }
    with service_process("balans_api", env):
        yield port


async def _kept(conn: asyncpg.Connection, flat_id: int) -> bytes | None:
    return await conn.fetchval(
        """select body from kept_profiles
           where flat_id = $1 and month = $2 and resolution = 'hour'""",
        flat_id,
        NOVEMBER,
    )


async def test_a_late_reading_changes_the_kept_profile(
    conn: asyncpg.Connection, database_url: str, module_nats_url: str, api_port: int
) -> None:
    building_id = await _building(conn, "1a")
    meter = next(
        m for m in await _channels(conn, building_id)
        if m["kind"] == "heat_meter" and m["role"] == "flat"
    )  # fmt: skip
    flat_id = meter["flat_id"]
    # the flat's heat meter misses two registers: its hours there are estimated
    await _seed_readings(conn, building_id, skip={(meter["id"], 3), (meter["id"], 4)}, start=H)
    await on_readings_stored(conn, building_id, H, LATENESS, LOOKAROUND)
    # balance has analysed the month running (its forecasts): November is final for it
    await conn.execute(
        """insert into forecasts (scope, scope_id, month, unit, consumed_to_date,
               forecast_total, hdd_to_date, hdd_month, as_of)
           select 'meter', id, $2, unit, 0, 0, 0, 0, now() from meters where building_id = $1""",
        building_id,
        this_month("UTC"),
    )
    account = await conn.fetchval("select id from accounts where flat_id = $1", flat_id)
    await create_user(conn, "kept-resident", PASSWORD, "consumer", account)

    nc = await nats.connect(module_nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    ctx = ServiceContext(
        name="allocation",
        settings=allocation_settings(database_url, module_nats_url, allocation_consumer="alloc"),
    )
    allocation = asyncio.create_task(serve(ctx))
    http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10)
    try:

        async def api_up() -> bool:
            try:
                return (await http.get("/api/v1/openapi.json")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually("the api serving", api_up)
        await eventually("allocation ready", lambda: ctx.ready)
        token = await http.post(
            "/api/v1/auth/token", data={"username": "kept-resident", "password": PASSWORD}
        )
        http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        path = f"/api/v1/flats/{flat_id}/profile?month={NOVEMBER:%Y-%m}&resolution=hour"

        async def drained(name: str) -> bool:
            try:
                info = await js.consumer_info(subjects.EVENTS_STREAM, f"{CONSUMER}-{name}")
            except NotFoundError:  # the api has not created it yet
                return False
            return info.num_pending == 0 and info.num_ack_pending == 0

        async def settled() -> bool:  # allocation's first announcement handled, month kept
            unsent = await conn.fetchval(
                "select count(*) from allocation_outbox where sent_at is null"
            )
            return (
                unsent == 0
                and await drained("allocation")
                and await _kept(conn, flat_id) is not None
            )

        await eventually("November kept", settled)
        old = await _kept(conn, flat_id)
        served = await http.get(path)
        assert served.status_code == 200
        assert served.content == old

        # the late registers arrive: the persister stores them and announces the hours
        watch = await js.subscribe(
            "balans.events.allocation.>",
            stream=subjects.EVENTS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.NEW,
        )
        late = [
            (meter["module_serial"], meter["input"], H + 3 * HOUR, 1000 + 2 + 3),
            (meter["module_serial"], meter["input"], H + 4 * HOUR, 1000 + 2 + 3),
        ]
        await conn.copy_records_to_table(
            "pulse_readings", records=late, columns=["module_serial", "input", "ts", "count"]
        )
        event = ReadingsStored(building_id=building_id, hour_from=H + 3 * HOUR,
                               hour_to=H + 4 * HOUR, rows=2)  # fmt: skip
        await js.publish(subjects.readings_stored(building_id), event.model_dump_json().encode())
        while True:  # allocation's announcement of the recomputed hours
            msg = await watch.next_msg(timeout=60)
            computed = AllocationComputed.model_validate_json(msg.data)
            if computed.building_id == building_id and computed.recomputation:
                break
        seq = msg.metadata.sequence.stream

        async def handled() -> bool:
            info = await js.consumer_info(subjects.EVENTS_STREAM, f"{CONSUMER}-allocation")
            return info.ack_floor.stream_seq >= seq

        await eventually("the api handled the recomputation", handled)
        answers = []

        async def kept_again() -> bool:
            answers.append((await http.get(path)).content)
            return await _kept(conn, flat_id) is not None

        await eventually("November kept again", kept_again)
        new = await _kept(conn, flat_id)
        answers.append((await http.get(path)).content)
        assert old not in answers  # never the old answer once its invalidation was handled
        assert answers[-1] == new
        estimated = [len(json.loads(body)["heat"]["estimated"]) for body in (old, new)]
        assert estimated[1] < estimated[0]
    finally:
        await http.aclose()
        ctx.stopping.set()
        await asyncio.wait_for(allocation, 30)
        await nc.close()
