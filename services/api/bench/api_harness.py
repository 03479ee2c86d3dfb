"""The api in the caller's event loop for tests: its lifespan run, no socket, an httpx
client on it signed in as a fresh user (shared by tests of several packages, as
ingest_harness is)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_core.nats import connect_nats


@asynccontextmanager
async def signed_in_api(
    database_url: str, nats_url: str, username: str, password: str, role: str = "operator"
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the api over ``database_url`` and NATS at ``nats_url``, with the bearer
    token of a new user ``username`` of ``role`` (the login limit raised: tests log in often)."""
    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, username, password, role)
    finally:
        await conn.close()
    nc = await connect_nats(nats_url, "api-test")
    try:
        app = create_app(ApiSettings(database_url=database_url, login_rate="1000/minute"), nc)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                token = await http.post(
                    "/api/v1/auth/token", data={"username": username, "password": password}
                )
                assert token.status_code == 200, token.text
                http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
                yield http
    finally:
        await nc.close()
