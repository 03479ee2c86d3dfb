"""Fixtures of the api tests: the demo city in a fresh database, a year of synthetic
hourly data for a few flats, one user per role, and an HTTP client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_db.secrets import KeyVault
from balans_db.seed import seed

PASSWORD = "correct-horse-battery"
ROLES = ("admin", "operator", "manager", "consumer")


# two months of hourly heat for every flat of the reference building, ending now
SYNTHETIC = """
insert into heat_allocation (building_id, flat_id, hour, measured_kwh, common_kwh, total_kwh,
                             method)
select f.building_id, f.id, h, 1 + (f.id % 5) * 0.1, 0.2, 1.2 + (f.id % 5) * 0.1, 'test'
from flats f, generate_series(date_trunc('hour', now()) - interval '60 days',
                              date_trunc('hour', now()) - interval '1 hour', '1 hour') h
where f.building_id = $1;
"""

METER_SERIES = """
insert into meter_consumption (meter_id, hour, value, unit)
select m.id, h, 0.01 * (1 + m.id % 3), m.unit
from meters m, generate_series(date_trunc('hour', now()) - interval '60 days',
                               date_trunc('hour', now()) - interval '1 hour', '1 hour') h
where m.building_id = $1;
"""

REGISTERS = """
insert into pulse_readings (module_serial, input, ts, count)
select c.module_serial, c.input, h, extract(epoch from h - $2)::bigint / 3600 * 10
from channels c join meters m on m.id = c.meter_id,
     generate_series($2, $2 + interval '47 hours', '1 hour') h
where m.building_id = $1;
"""


@dataclass
class World:
    database_url: str
    building_id: int
    other_building_id: int
    flat_id: int
    other_flat_id: int
    account_id: int
    meter_id: int
    other_meter_id: int
    valve_meter_id: int
    tokens: dict[str, str]


@pytest.fixture(scope="module")
async def world(database_url: str) -> AsyncIterator[World]:
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        building_id = await conn.fetchval("select id from buildings where code = 'ref-2a'")
        other = await conn.fetchval("select id from buildings where code = 'demo-1a'")
        await conn.execute(SYNTHETIC, building_id)
        await conn.execute(METER_SERIES, building_id)
        await conn.execute(METER_SERIES, other)
        # a multi-utility flat of the reference building (it has flat meters)
        flat_id = await conn.fetchval(
            """select f.id from flats f join meters m on m.flat_id = f.id
               where f.building_id = $1 and m.has_valve order by f.id limit 1""",
            building_id,
        )
        other_flat = await conn.fetchval(
            "select flat_id from meters where building_id = $1 and role = 'flat' limit 1", other
        )
        account_id = await conn.fetchval("select id from accounts where flat_id = $1", flat_id)
        meter_id = await conn.fetchval(
            "select id from meters where flat_id = $1 order by id limit 1", flat_id
        )
        valve = await conn.fetchval(
            "select id from meters where flat_id = $1 and has_valve order by id limit 1", flat_id
        )
        other_meter = await conn.fetchval(
            "select id from meters where flat_id = $1 limit 1", other_flat
        )
        tokens: dict[str, str] = {}
        for role in ROLES:
            await create_user(
                conn, role, PASSWORD, role, account_id if role == "consumer" else None
            )
        yield World(
            database_url,
            building_id,
            other,
            flat_id,
            other_flat,
            account_id,
            meter_id,
            other_meter,
            valve,
            tokens,
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app, with a bearer token per role in ``world.tokens``."""
    settings = ApiSettings(database_url=world.database_url, login_rate="1000/minute")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            for role in ROLES:
                response = await http.post(
                    "/api/v1/auth/token", data={"username": role, "password": PASSWORD}
                )
                world.tokens[role] = response.json()["access_token"]
            yield http


def auth(world: World, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}
