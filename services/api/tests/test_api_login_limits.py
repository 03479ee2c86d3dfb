"""Login limits on the served app: X-Forwarded-For counts only from configured proxies,
the per-client limit is keyed on the real client, and a user's failed logins add a
doubling delay (never a lock-out) that an admin can clear."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from itertools import count
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.app import create_app
from balans_api.server import serving
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_core.health import bind_socket
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

PASSWORD = "a-long-and-unlisted-passphrase"
_names = count()

Serve = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def served(world: World) -> Serve:
    """Serve a fresh app with the given settings over the test database, the per-client
    counters (shared in ``login_attempts``) emptied; yields a client of it."""

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = ApiSettings(database_url=world.database_url, **overrides)
        conn = await asyncpg.connect(world.database_url)
        try:
            await conn.execute("delete from login_attempts")
        finally:
            await conn.close()
        sock = bind_socket("127.0.0.1", 0)
        async with serving(create_app(settings), sock):
            base = f"http://127.0.0.1:{sock.getsockname()[1]}/api/v1"
            async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
                yield http

    return serve


async def _user(world: World) -> tuple[int, str]:
    name = f"limited{next(_names)}"
    conn = await asyncpg.connect(world.database_url)
    try:
        row = await create_user(conn, name, PASSWORD, "operator")
    finally:
        await conn.close()
    return int(row["id"]), name


async def _login(
    http: httpx.AsyncClient, username: str, password: str, forwarded_for: str | None = None
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await http.post(
        "/auth/token", data={"username": username, "password": password}, headers=headers
    )


async def _delay_s(world: World, user_id: int) -> float:
    conn = await asyncpg.connect(world.database_url)
    try:
        value = await conn.fetchval(
            "select extract(epoch from login_delay_until - now())::float8 from users where id = $1",
            user_id,
        )
    finally:
        await conn.close()
    return float(value) if value is not None else 0.0


async def _end_delay(world: World, user_id: int) -> None:
    """As if the user's delay had run out."""
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute("update users set login_delay_until = now() where id = $1", user_id)
    finally:
        await conn.close()


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(served: Serve) -> None:
    """With no proxy configured, a rotating X-Forwarded-For does not buy more attempts:
    every attempt from this peer counts against the same client."""
    async with served(login_rate="3/minute") as http:
        statuses = [
            (await _login(http, "nobody", "wrong-password-1", f"10.0.0.{i}")).status_code
            for i in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


async def test_forwarded_for_from_a_trusted_proxy_names_the_client(served: Serve) -> None:
    """Behind a configured proxy each forwarded client has its own budget, so the users
    behind one proxy do not share it; one client alone still runs out."""
    async with served(login_rate="3/minute", api_trusted_proxies="127.0.0.1") as http:
        many = [
            (await _login(http, "nobody", "wrong-password-1", f"10.0.0.{i}")).status_code
            for i in range(5)
        ]
        one = [
            (await _login(http, "nobody", "wrong-password-1", "10.9.9.9")).status_code
            for _ in range(4)
        ]
    assert many == [401] * 5
    assert one == [401, 401, 401, 429]


async def test_failed_logins_delay_the_user_then_it_ends(served: Serve, world: World) -> None:
    """Past the free failures the user's logins are refused, the right password too, with
    Retry-After; when the delay has run out the right password works and resets it."""
    user_id, name = await _user(world)
    async with served(login_free_failures=2, login_delay_s=100, login_max_delay_s=300) as http:
        assert [(await _login(http, name, "wrong-password-1")).status_code for _ in range(3)] == [
            401,
            401,
            401,
        ]
        refused = await _login(http, name, PASSWORD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 100
        assert "failed logins" in refused.json()["error"]["message"]
        await _end_delay(world, user_id)
        assert (await _login(http, name, PASSWORD)).status_code == 200
        # reset: the next failures are free again
        assert (await _login(http, name, "wrong-password-1")).status_code == 401
        assert (await _login(http, name, PASSWORD)).status_code == 200


async def test_the_delay_doubles_up_to_the_cap(served: Serve, world: World) -> None:
    user_id, name = await _user(world)
    delays = []
    async with served(login_free_failures=1, login_delay_s=100, login_max_delay_s=300) as http:
        assert (await _login(http, name, "wrong-password-1")).status_code == 401
        assert await _delay_s(world, user_id) == 0
        for _ in range(4):
            assert (await _login(http, name, "wrong-password-1")).status_code == 401
            delays.append(await _delay_s(world, user_id))
            await _end_delay(world, user_id)
    # 100, 200, 400 -> capped 300, 300 (less the moments the test itself took)
    expected = [100, 200, 300, 300]
    assert all(e - 30 < d <= e for d, e in zip(delays, expected, strict=True)), delays


async def test_the_delay_applies_whichever_address_tries(served: Serve, world: World) -> None:
    """Guessing one user's password from many addresses is slowed all the same."""
    _, name = await _user(world)
    async with served(
        login_free_failures=2, login_delay_s=100, api_trusted_proxies="127.0.0.1"
    ) as http:
        statuses = [
            (await _login(http, name, "wrong-password-1", f"10.1.0.{i}")).status_code
            for i in range(4)
        ]
    assert statuses == [401, 401, 401, 429]


async def test_an_admin_clears_the_delay(
    served: Serve, world: World, client: httpx.AsyncClient
) -> None:
    user_id, name = await _user(world)
    async with served(login_free_failures=1, login_delay_s=100) as http:
        for _ in range(2):
            await _login(http, name, "wrong-password-1")
        assert (await _login(http, name, PASSWORD)).status_code == 429
        listed = await client.get("/api/v1/users", headers=auth(world, "admin"))
        mine = next(u for u in listed.json()["items"] if u["id"] == user_id)
        assert mine["failed_logins"] == 2
        assert mine["login_delay_until"] is not None
        # only an admin may
        denied = await client.post(
            f"/api/v1/users/{user_id}/unlock", headers=auth(world, "operator")
        )
        assert denied.status_code == 403
        unlocked = await client.post(
            f"/api/v1/users/{user_id}/unlock", headers=auth(world, "admin")
        )
        assert unlocked.status_code == 200, unlocked.text
        assert unlocked.json()["failed_logins"] == 0
        assert unlocked.json()["login_delay_until"] is None
        assert (await _login(http, name, PASSWORD)).status_code == 200
    audit = await client.get("/api/v1/audit?action=user.unlock", headers=auth(world, "admin"))
    assert [e["target"] for e in audit.json()["items"]] == [f"user:{name}"]
