"""POST /provisioning/meter-exchanges: an exchange recorded late over the REST API (one
transaction, audited, announced through the outbox), a refusal naming every problem and
writing nothing, and the building's document keeping the channel history."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.users import create_user
from balans_db.secrets import KeyVault
from balans_db.topology import demo_city, write_building

from .conftest import PASSWORD, ROLES, World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

URL = "/api/v1/provisioning/meter-exchanges"


@pytest.fixture(scope="module")
async def world(database_url: str) -> AsyncIterator[World]:
    """Only demo-1a and one user per role (the shared world's 60 days of data are not
    needed here)."""
    conn = await asyncpg.connect(database_url)
    try:
        spec = next(s for s in demo_city() if s.code == "demo-1a")
        building_id = await write_building(conn, spec, KeyVault())
        flat_id, meter_id = await conn.fetchrow(
            "select flat_id, id from meters where building_id = $1 and role = 'flat' limit 1",
            building_id,
        )
        account_id = await conn.fetchval("select id from accounts where flat_id = $1", flat_id)
        for role in ROLES:
            await create_user(
                conn, role, PASSWORD, role, account_id if role == "consumer" else None
            )
        ids = (building_id, building_id, flat_id, flat_id, account_id, meter_id, meter_id)
        yield World(database_url, *ids, meter_id, {})
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def meter(world: World) -> dict[str, Any]:
    """A flat heat meter of demo-1a, its module counting 2 pulses an hour for the 3 days
    before the swap (10 days ago, 09:20) and, reset by the fitter, for the 3 days after."""
    conn = await asyncpg.connect(world.database_url)
    try:
        row = await conn.fetchrow(
            """select m.serial, m.pulse_weight, c.module_serial, c.input
               from meters m join channels c on c.meter_id = m.id
               where m.building_id = $1 and m.role = 'flat' and m.utility = 'heat'
               order by m.id limit 1""",
            world.other_building_id,
        )
        hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=10)
        before = [(hour - timedelta(hours=h), 1000 - 2 * h) for h in range(72)]
        after = [(hour + timedelta(hours=h), 2 * h) for h in range(1, 72)]
        await conn.executemany(
            "insert into pulse_readings (module_serial, input, ts, count) values ($1, $2, $3, $4)",
            [(row["module_serial"], row["input"], ts, c) for ts, c in before + after],
        )
        return {**dict(row), "at": hour + timedelta(minutes=20), "count": 1000}
    finally:
        await conn.close()


async def _rows(world: World, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(world.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def test_consumers_cannot_record_an_exchange(client: httpx.AsyncClient, world: World) -> None:
    response = await client.post(URL, json={}, headers=auth(world, "consumer"))
    assert response.status_code == 403


async def test_a_bad_exchange_names_every_problem_and_writes_nothing(
    client: httpx.AsyncClient, world: World, meter: dict[str, Any]
) -> None:
    m = meter
    before = await _rows(world, "select count(*) from channels")
    body = {
        "module": m["module_serial"] + 1,  # not the meter's module
        "input": m["input"],
        "at": m["at"].isoformat(),
        "old_meter": m["serial"],
        "final_register": "0",  # below its last reading
        "new_meter": "no-such-meter",
        "start_register": "0",
    }
    response = await client.post(URL, json=body, headers=auth(world, "operator"))
    assert response.status_code == 422, response.text
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert {"module", "final_register", "new_serial"} <= paths
    assert await _rows(world, "select count(*) from channels") == before
    assert not await _rows(world, "select 1 from meters where serial = 'no-such-meter'")


async def test_a_late_exchange_is_recorded_and_recomputes_from_the_swap(
    client: httpx.AsyncClient, world: World, meter: dict[str, Any]
) -> None:
    m = meter
    final = Decimal(m["count"]) * m["pulse_weight"] + Decimal("0.4")
    body = {
        "module": m["module_serial"],
        "input": m["input"],
        "at": m["at"].isoformat(),
        "old_meter": m["serial"],
        "final_register": str(final),
        "new_meter": {"serial": f"{m['serial']}-b", "pulse_weight": "0.1"},
        "start_register": "3",
        "counter_reset": True,
    }
    response = await client.post(URL, json=body, headers=auth(world, "operator"))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["new_meter_created"] is True
    assert answer["new_count_at_start"] == 0
    assert Decimal(answer["new_register_offset"]) == 3
    assert answer["recompute_from"].startswith(m["at"].strftime("%Y-%m-%dT%H:00"))
    periods = await _rows(
        world,
        """select m.serial, c.valid_from, c.valid_to
           from channels c join meters m on m.id = c.meter_id
           where c.module_serial = $1 and c.input = $2 order by m.serial""",
        m["module_serial"],
        m["input"],
    )
    assert [(r["serial"], r["valid_from"], r["valid_to"]) for r in periods] == [
        (m["serial"], None, m["at"]),
        (f"{m['serial']}-b", m["at"], None),
    ]
    subjects = {
        r["subject"].rsplit(".", 2)[-2]
        for r in await _rows(world, "select subject from api_outbox order by id desc limit 2")
    }
    assert subjects == {"readings", "topology"}
    audited = await _rows(world, "select 1 from audit_log where action = 'meter.exchange'")
    assert len(audited) == 1
    markers = await client.get(
        "/api/v1/provisioning/buildings/demo-1a/meter-exchanges", headers=auth(world, "manager")
    )
    assert markers.status_code == 200
    assert [(x["old_meter"], x["new_meter"]) for x in markers.json()["items"]] == [
        (m["serial"], f"{m['serial']}-b")
    ]
    again = await client.post(URL, json=body, headers=auth(world, "operator"))
    assert again.status_code == 422  # the old meter left its input already
    # each meter's registers are its own: the old one's end before the swap, the new one's
    # begin after it and read from its start register
    ids = {
        r["serial"]: r["id"]
        for r in await _rows(
            world,
            "select serial, id from meters where serial = any($1::text[])",
            [m["serial"], f"{m['serial']}-b"],
        )
    }
    span = {
        "from": (m["at"] - timedelta(days=4)).isoformat(),
        "to": (m["at"] + timedelta(days=4)).isoformat(),
    }
    old = await client.get(
        f"/api/v1/meters/{ids[m['serial']]}/registers", params=span, headers=auth(world, "operator")
    )
    new = await client.get(
        f"/api/v1/meters/{ids[m['serial'] + '-b']}/registers",
        params=span,
        headers=auth(world, "operator"),
    )
    assert old.status_code == new.status_code == 200, old.text
    old_times = [datetime.fromisoformat(p["t"]) for p in old.json()["items"]]
    assert old_times
    assert max(old_times) < m["at"]
    points = new.json()["items"]
    assert points
    assert min(datetime.fromisoformat(p["t"]) for p in points) > m["at"]
    assert all(Decimal(str(p["value"])) == 3 + Decimal(p["count"]) / 10 for p in points)


async def test_the_document_keeps_the_channel_history(
    client: httpx.AsyncClient, world: World
) -> None:
    """After the exchange the building's document holds both meters with their periods,
    and putting the same document back changes nothing."""
    base = "/api/v1/provisioning/buildings/demo-1a"
    doc = (await client.get(base, headers=auth(world, "operator"))).json()
    periods = [mt["channel"] for mt in doc["meters"] if "valid_to" in (mt["channel"] or {})]
    assert len(periods) == 1
    assert "count_at_end" in periods[0]
    response = await client.put(base, json=doc, headers=auth(world, "operator"))
    assert response.status_code == 200, response.text
    assert response.json()["changes"] == {}
