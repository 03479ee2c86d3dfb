"""Fixtures of the api tests: the demo city with 60 days of synthetic hourly data in two
buildings (built once per session, a copy per module), one user per role, and an HTTP
client on the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from synthetic import fill_building

from balans_api.app import create_app
from balans_api.series import buckets
from balans_api.settings import ApiSettings
from balans_api.timerange import iso_z
from balans_api.users import create_user
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.pytest_plugin import DatabaseTemplates

PASSWORD = "correct-horse-battery"
ROLES = ("admin", "operator", "manager", "consumer")


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


async def _demo_world(database_url: str) -> None:
    """The demo city with 60 days of synthetic data in two of its buildings."""
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        for code in ("ref-2a", "demo-1a"):
            building = await conn.fetchval("select id from buildings where code = $1", code)
            await fill_building(conn, building, now - timedelta(days=60), now)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
async def world(
    database_templates: DatabaseTemplates, request: pytest.FixtureRequest
) -> AsyncIterator[World]:
    """A copy of the demo world (built once per session) for this module, with one user per
    role."""
    async with database_templates.copy("api_world", _demo_world, request.path.stem) as database_url:
        conn = await asyncpg.connect(database_url)
        try:
            building_id = await conn.fetchval("select id from buildings where code = 'ref-2a'")
            other = await conn.fetchval("select id from buildings where code = 'demo-1a'")
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
                "select id from meters where flat_id = $1 and has_valve order by id limit 1",
                flat_id,
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
    """An HTTP client on the app, with a bearer token per role in ``world.tokens``; users'
    principals are kept for a minute, so a change that did not forget them shows."""
    settings = ApiSettings(
        database_url=world.database_url, login_rate="1000/minute", api_auth_cache_ttl_s=60
    )
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


def points(series: dict[str, Any]) -> list[dict[str, Any]]:
    """A series answer (docs/api.md, "Series") bucket by bucket as the points a client reads:
    ``{t (ISO 8601 UTC with Z), value, estimated, partial}`` of each bucket with a value."""
    return [{**p, "t": iso_z(p["t"])} for p in buckets(series)]
