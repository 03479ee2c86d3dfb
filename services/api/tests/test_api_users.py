"""Administering users: the password policy on create and change, and the rules that keep
someone able to administer (no self-deactivation, never the last active admin); a user's
own preferences (language, monthly e-mail) and errors in the reader's language; integrators'
webhook subscriptions."""

from __future__ import annotations

from itertools import count

import asyncpg
import httpx
import pytest

from balans_api.users import create_user

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

GOOD = "a-long-and-unlisted-passphrase"
_names = count()


def _name() -> str:
    return f"person{next(_names)}"


WEAK = [
    ("password", "at least 12 characters"),
    ("short-pass1", "at least 12 characters"),
    ("password1234", "breached or common passwords"),
    ("qwertyuiop123", "breached or common passwords"),
    ("{name}-and-more", "must not contain the username"),
]


@pytest.mark.parametrize(("password", "reason"), WEAK)
async def test_create_refuses_a_weak_password(
    client: httpx.AsyncClient, world: World, password: str, reason: str
) -> None:
    name = _name()
    response = await client.post(
        "/api/v1/users",
        json={"username": name, "password": password.format(name=name), "role": "operator"},
        headers=auth(world, "admin"),
    )
    assert response.status_code == 422, response.text
    assert reason in str(response.json()["error"]), response.text
    users = await client.get("/api/v1/users?limit=1000", headers=auth(world, "admin"))
    assert name not in [u["username"] for u in users.json()["items"]]


async def test_create_accepts_a_good_password(client: httpx.AsyncClient, world: World) -> None:
    name = _name()
    response = await client.post(
        "/api/v1/users",
        json={"username": name, "password": GOOD, "role": "operator"},
        headers=auth(world, "admin"),
    )
    assert response.status_code == 201, response.text
    login = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    assert login.status_code == 200


async def _signed_in(client: httpx.AsyncClient, world: World) -> tuple[str, dict[str, str]]:
    name = _name()
    conn = await asyncpg.connect(world.database_url)
    try:
        await create_user(conn, name, GOOD, "manager")
    finally:
        await conn.close()
    token = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    return name, {"Authorization": f"Bearer {token.json()['access_token']}"}


@pytest.mark.parametrize(("password", "reason"), WEAK)
async def test_change_refuses_a_weak_password(
    client: httpx.AsyncClient, world: World, password: str, reason: str
) -> None:
    name, headers = await _signed_in(client, world)
    response = await client.post(
        "/api/v1/auth/password",
        json={"current_password": GOOD, "new_password": password.format(name=name)},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert reason in str(response.json()["error"]), response.text
    still = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    assert still.status_code == 200


async def test_change_needs_the_current_password_and_takes_effect(
    client: httpx.AsyncClient, world: World
) -> None:
    name, headers = await _signed_in(client, world)
    new = "another-long-unlisted-phrase"
    wrong = await client.post(
        "/api/v1/auth/password",
        json={"current_password": "not-the-password", "new_password": new},
        headers=headers,
    )
    assert wrong.status_code == 403
    changed = await client.post(
        "/api/v1/auth/password",
        json={"current_password": GOOD, "new_password": new},
        headers=headers,
    )
    assert changed.status_code == 204, changed.text
    old = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    assert old.status_code == 401
    fresh = await client.post("/api/v1/auth/token", data={"username": name, "password": new})
    assert fresh.status_code == 200
    audit = await client.get("/api/v1/audit?action=user.password", headers=auth(world, "admin"))
    assert f"user:{name}" in [e["target"] for e in audit.json()["items"]]


async def _admin_id(client: httpx.AsyncClient, world: World, name: str) -> int:
    users = await client.get("/api/v1/users?limit=1000", headers=auth(world, "admin"))
    return int(next(u["id"] for u in users.json()["items"] if u["username"] == name))


async def test_an_admin_cannot_deactivate_itself(client: httpx.AsyncClient, world: World) -> None:
    admin_id = await _admin_id(client, world, "admin")
    response = await client.post(
        f"/api/v1/users/{admin_id}/deactivate", headers=auth(world, "admin")
    )
    assert response.status_code == 409
    assert "own account" in response.json()["error"]["message"]
    assert (await client.get("/api/v1/auth/me", headers=auth(world, "admin"))).status_code == 200


async def test_the_last_active_admin_stays(client: httpx.AsyncClient, world: World) -> None:
    """A second admin can deactivate the first; the second is then the last active admin,
    which not even an admin-scoped API key may deactivate."""
    name = _name()
    conn = await asyncpg.connect(world.database_url)
    try:
        await create_user(conn, name, GOOD, "admin")
    finally:
        await conn.close()
    login = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    second = {"Authorization": f"Bearer {login.json()['access_token']}"}
    key = await client.post(
        "/api/v1/api-keys", json={"name": "ops", "scopes": ["admin"]}, headers=second
    )
    as_key = {"Authorization": f"Bearer {key.json()['token']}"}
    first_id = await _admin_id(client, world, "admin")
    second_id = await _admin_id(client, world, name)
    try:
        done = await client.post(f"/api/v1/users/{first_id}/deactivate", headers=second)
        assert done.status_code == 200, done.text
        me = await client.get("/api/v1/auth/me", headers=auth(world, "admin"))
        assert me.status_code == 401
        refused = await client.post(f"/api/v1/users/{second_id}/deactivate", headers=as_key)
        assert refused.status_code == 409
        assert "last active admin" in refused.json()["error"]["message"]
        assert (await client.get("/api/v1/auth/me", headers=second)).status_code == 200
    finally:
        conn = await asyncpg.connect(world.database_url)
        try:
            await conn.execute("update users set active = true where id = $1", first_id)
        finally:
            await conn.close()


async def test_preferences_kept_on_the_user_row(client: httpx.AsyncClient, world: World) -> None:
    consumer = auth(world, "consumer")
    assert (await client.get("/api/v1/me/preferences", headers=consumer)).json() == {
        "language": None,
        "monthly_email": True,
    }
    chosen = {"language": "ru", "monthly_email": False}
    response = await client.put("/api/v1/me/preferences", headers=consumer, json=chosen)
    assert response.status_code == 200, response.text
    assert (await client.get("/api/v1/me/preferences", headers=consumer)).json() == chosen
    refused = await client.put(
        "/api/v1/me/preferences", headers=consumer, json={"language": "de", "monthly_email": True}
    )
    assert refused.status_code == 422


async def test_errors_in_the_readers_language(client: httpx.AsyncClient) -> None:
    by_header = await client.get("/api/v1/auth/me", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    assert by_header.status_code == 401
    assert by_header.json()["error"]["message"] == "требуется аутентификация"
    by_cookie = await client.get("/api/v1/auth/me", headers={"Cookie": "balans_lang=ro"})
    assert by_cookie.json()["error"]["message"] == "autentificare necesară"
    english = await client.get("/api/v1/auth/me")
    assert english.json()["error"]["message"] == "authentication required"


async def test_webhook_subscriptions(client: httpx.AsyncClient, world: World) -> None:
    admin = auth(world, "admin")
    body = {"url": "http://127.0.0.1:9/hooks", "events": ["invoice.issued", "alert.opened"]}
    created = await client.post("/api/v1/webhooks", headers=admin, json=body)
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_")
    assert hook["events"] == ["alert.opened", "invoice.issued"]
    listed = (await client.get("/api/v1/webhooks", headers=admin)).json()["items"]
    assert [h["id"] for h in listed] == [hook["id"]]
    assert "secret" not in listed[0]
    paused = await client.patch(
        f"/api/v1/webhooks/{hook['id']}", headers=admin, json={"active": False}
    )
    assert paused.json()["active"] is False
    detail = (await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)).json()
    assert detail["deliveries"] == {}
    dead = await client.get("/api/v1/webhook-deliveries?state=dead", headers=admin)
    assert dead.json() == {"items": [], "next_cursor": None}
    unknown = await client.post(
        "/api/v1/webhooks", headers=admin, json={**body, "events": ["reading.stored"]}
    )
    assert unknown.status_code == 422
    forbidden = await client.get("/api/v1/webhooks", headers=auth(world, "consumer"))
    assert forbidden.status_code == 403
    assert (await client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin)).status_code == 204
    gone = await client.get(f"/api/v1/webhooks/{hook['id']}", headers=admin)
    assert gone.status_code == 404


async def test_a_role_changed_audited_and_kept_for_an_admin(
    client: httpx.AsyncClient, world: World
) -> None:
    """An operator becomes a manager (audited, the new role's scopes at once); a consumer
    needs an account and only a consumer has one; the admin's own role stays; a
    deactivated user is let in again."""
    name = _name()
    admin = auth(world, "admin")
    created = await client.post(
        "/api/v1/users",
        json={"username": name, "password": GOOD, "role": "operator"},
        headers=admin,
    )
    user_id = created.json()["id"]
    done = await client.patch(f"/api/v1/users/{user_id}", json={"role": "manager"}, headers=admin)
    assert done.status_code == 200, done.text
    assert done.json()["role"] == "manager"
    login = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    me = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {login.json()['access_token']}"}
    )
    assert me.json()["scopes"] == ["read"]
    audit = await client.get(f"/api/v1/audit?action=user.update&target=user:{name}", headers=admin)
    assert [a["detail"] for a in audit.json()["items"]] == [{"role": "manager"}]
    no_account = await client.patch(
        f"/api/v1/users/{user_id}", json={"role": "consumer"}, headers=admin
    )
    assert no_account.status_code == 422
    assert "account_id is required" in no_account.json()["error"]["message"]
    own = await client.patch(
        f"/api/v1/users/{await _admin_id(client, world, 'admin')}",
        json={"role": "operator"},
        headers=admin,
    )
    assert own.status_code == 409
    users = (await client.get("/api/v1/users?limit=1000", headers=admin)).json()["items"]
    assert {u["username"]: u["role"] for u in users}[name] == "manager"
    assert (await client.post(f"/api/v1/users/{user_id}/deactivate", headers=admin)).is_success
    refused = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    assert refused.status_code == 401
    again = await client.post(f"/api/v1/users/{user_id}/activate", headers=admin)
    assert again.json()["active"] is True
    login = await client.post("/api/v1/auth/token", data={"username": name, "password": GOOD})
    assert login.status_code == 200


async def test_audit_filters_narrow_the_log(client: httpx.AsyncClient, world: World) -> None:
    admin = auth(world, "admin")
    await client.post(
        "/api/v1/api-keys", json={"name": "filtered", "scopes": ["read"]}, headers=admin
    )
    everything = (await client.get("/api/v1/audit?limit=1000", headers=admin)).json()["items"]
    keys = (
        await client.get("/api/v1/audit?action=api_key.create&actor=user:admin", headers=admin)
    ).json()["items"]
    expected = [
        a for a in everything if a["action"] == "api_key.create" and a["actor"] == "user:admin"
    ]
    assert keys
    assert keys == expected
    last = keys[-1]["at"]
    since = await client.get("/api/v1/audit", params={"since": last}, headers=admin)
    assert all(a["at"] >= last for a in since.json()["items"])
    assert keys[-1] in since.json()["items"]
    until = await client.get("/api/v1/audit", params={"until": last, "limit": 1000}, headers=admin)
    assert keys[-1] not in until.json()["items"]
