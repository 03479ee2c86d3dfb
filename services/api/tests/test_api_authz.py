"""The authorization matrix: every endpoint x every role, and consumer isolation."""

from __future__ import annotations

import itertools

import asyncpg
import httpx
import pytest

from balans_devstack.eventually import eventually

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

READ = {"admin", "operator", "manager", "consumer"}
STAFF = {"admin", "operator", "manager"}
OPERATE = {"admin", "operator"}
ADMIN = {"admin"}

# (method, path template, roles allowed); {flat} {meter} {building} {valve} {alert}
MATRIX = [
    ("GET", "/auth/me", READ),
    ("GET", "/sites", READ),
    ("GET", "/buildings", READ),
    ("GET", "/buildings/{building}", READ),
    ("GET", "/buildings/{building}/entrances", READ),
    ("GET", "/buildings/{building}/risers", READ),
    ("GET", "/buildings/{building}/ranking", READ),
    ("GET", "/buildings/{building}/overview", STAFF),
    ("GET", "/flats", READ),
    ("GET", "/flats/{flat}", READ),
    ("GET", "/flats/{flat}/heat", READ),
    ("GET", "/flats/{flat}/heat/series", READ),
    ("GET", "/flats/{flat}/profile", READ),
    ("GET", "/flats/{flat}/history", READ),
    ("GET", "/flats/{flat}/readings?date=2026-01-15", READ),
    ("GET", "/flats/{flat}/statement", READ),
    ("GET", "/flats/{flat}/explain", READ),
    ("GET", "/accounts", READ),
    ("GET", "/meters", READ),
    ("GET", "/meters/{meter}", READ),
    ("GET", "/meters/{meter}/registers", READ),
    ("GET", "/meters/{meter}/consumption", READ),
    ("GET", "/alerts", READ),
    ("GET", "/alerts/counts", READ),
    ("GET", "/alerts/{alert}", READ),
    ("GET", "/flats/{flat}/card", STAFF),
    ("GET", "/search?q=1", STAFF),
    ("GET", "/tariffs", READ),
    ("GET", "/invoices", READ),
    ("GET", "/concentrators", STAFF),
    ("GET", "/modules", STAFF),
    ("GET", "/balance-groups", STAFF),
    ("GET", "/commands", STAFF),
    ("POST", "/alerts/{alert}/acknowledge", OPERATE),
    ("POST", "/meters/{valve}/commands", OPERATE),
    ("GET", "/users", ADMIN),
    ("GET", "/api-keys", ADMIN),
    ("GET", "/audit", ADMIN),
    ("GET", "/webhooks", ADMIN),
    ("GET", "/webhook-deliveries", ADMIN),
    ("GET", "/me/preferences", READ),
    ("GET", "/provisioning/buildings/ref-2a", STAFF),
    ("GET", "/exports?building=ref-2a", STAFF),
    ("POST", "/imports?dry_run=true", OPERATE),
    ("POST", "/provisioning/concentrators/1/rotate-key", OPERATE),
]

BODIES = {
    "/alerts/{alert}/acknowledge": {"note": "t"},
    "/meters/{valve}/commands": {"action": "ping"},
    "/imports?dry_run=true": {},
    "/provisioning/concentrators/1/rotate-key": {},
}


_CAUSES = itertools.count()


async def _alert(world: World, client: httpx.AsyncClient) -> int:
    import asyncpg

    conn = await asyncpg.connect(world.database_url)
    try:
        return int(
            await conn.fetchval(
                """insert into alerts (kind, cause_key, building_id, meter_id, first_hour,
                                       last_hour, summary)
                   values ('leak', $3, $1, $2, now(), now(), 'water flows at night')
                   returning id""",
                world.building_id,
                world.meter_id,
                f"test-{next(_CAUSES)}",
            )
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("role", ["admin", "operator", "manager", "consumer", "anonymous"])
async def test_matrix(client: httpx.AsyncClient, world: World, role: str) -> None:
    """Each role reaches exactly the endpoints its scopes allow (401 without a token)."""
    alert = await _alert(world, client)
    ids = {
        "flat": world.flat_id,
        "meter": world.meter_id,
        "building": world.building_id,
        "valve": world.valve_meter_id,
        "alert": alert,
    }
    headers = auth(world, role) if role != "anonymous" else {}
    wrong = []
    for method, template, allowed in MATRIX:
        response = await client.request(
            method,
            "/api/v1" + template.format(**ids),
            headers=headers,
            json=BODIES.get(template),
        )
        expected_denial = 401 if role == "anonymous" else 403
        ok = response.status_code not in (401, 403)
        if (role in allowed) != ok or (not ok and response.status_code != expected_denial):
            wrong.append((method, template, response.status_code))
    assert wrong == []


OTHERS = [
    "/flats/{flat}",
    "/flats/{flat}/heat",
    "/flats/{flat}/profile",
    "/flats/{flat}/history",
    "/flats/{flat}/statement",
    "/flats/{flat}/explain",
    "/flats/{flat}/readings?date=2026-01-15",
    "/meters/{meter}",
    "/meters/{meter}/consumption",
    "/meters/{meter}/registers",
    "/buildings/{building}",
    "/buildings/{building}/ranking",
    "/buildings/{building}/risers",
]


async def test_consumer_cannot_see_other_flats(client: httpx.AsyncClient, world: World) -> None:
    """Every object-scoped endpoint answers 404 for another flat's objects."""
    h = auth(world, "consumer")
    ids = {
        "flat": world.other_flat_id,
        "meter": world.other_meter_id,
        "building": world.other_building_id,
    }
    statuses = {
        p: (await client.get("/api/v1" + p.format(**ids), headers=h)).status_code for p in OTHERS
    }
    assert set(statuses.values()) == {404}


async def test_consumer_lists_are_filtered(client: httpx.AsyncClient, world: World) -> None:
    """List endpoints return only the consumer's own meters, account and building."""
    h = auth(world, "consumer")
    meters = (await client.get("/api/v1/meters?limit=1000", headers=h)).json()["items"]
    accounts = (await client.get("/api/v1/accounts", headers=h)).json()["items"]
    buildings = (await client.get("/api/v1/buildings", headers=h)).json()["items"]
    assert {m["flat_id"] for m in meters} == {world.flat_id}
    assert [a["id"] for a in accounts] == [world.account_id]
    assert [b["id"] for b in buildings] == [world.building_id]


async def test_api_key_scopes(client: httpx.AsyncClient, world: World) -> None:
    """A read-scoped integrator key reads the network but cannot send commands; revoked, it
    stops working."""
    created = await client.post(
        "/api/v1/api-keys", json={"name": "erp", "scopes": ["read"]}, headers=auth(world, "admin")
    )
    key = created.json()
    h = {"Authorization": f"Bearer {key['token']}"}
    assert (await client.get("/api/v1/modules?limit=5", headers=h)).status_code == 200
    command = await client.post(
        f"/api/v1/meters/{world.valve_meter_id}/commands", json={"action": "ping"}, headers=h
    )
    assert command.status_code == 403
    await client.post(f"/api/v1/api-keys/{key['id']}/revoke", headers=auth(world, "admin"))
    assert (await client.get("/api/v1/modules", headers=h)).status_code == 401


async def test_login_is_rate_limited(world: World) -> None:
    """The eleventh login from one client within a minute is refused with 429 (an unknown
    user, so that only the per-client limit applies, not a user's backoff)."""
    from balans_api.app import create_app
    from balans_api.settings import ApiSettings

    app = create_app(ApiSettings(database_url=world.database_url, login_rate="10/minute"))
    conn = await asyncpg.connect(world.database_url)
    try:  # the window is shared (login_attempts): the other tests' logins are in it
        await conn.execute("delete from login_attempts")
    finally:
        await conn.close()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            codes = [
                (
                    await http.post(
                        "/api/v1/auth/token",
                        data={"username": "nobody", "password": "wrong-password"},
                    )
                ).status_code
                for _ in range(11)
            ]
    assert codes == [401] * 10 + [429]


async def test_commands_and_alert_actions_are_audited(
    client: httpx.AsyncClient, world: World
) -> None:
    """A valve command without a listening ingest ends 'offline' or 'failed' and lands in
    the audit log; an alert acknowledgement without NATS cannot reach balance (which alone
    writes alerts): a 503 naming it, and nothing audited (tests/test_alert_actions_api.py
    has the acknowledgement that works)."""
    alert = await _alert(world, client)
    h = auth(world, "operator")
    ack = await client.post(f"/api/v1/alerts/{alert}/acknowledge", json={"note": "seen"}, headers=h)
    assert ack.status_code == 503
    assert "balance" in ack.json()["error"]["message"]
    sent = await client.post(
        f"/api/v1/meters/{world.valve_meter_id}/commands",
        json={"action": "valve_close", "reason": "test"},
        headers=h,
    )
    assert sent.status_code == 202
    status = sent.json()

    async def settled() -> bool:  # the dispatcher finishes in the background
        status.update((await client.get(f"/api/v1/commands/{status['id']}", headers=h)).json())
        return status["status"] != "pending"

    await eventually("the command leaves 'pending'", settled)
    assert status["status"] == "failed"  # the test app has no NATS connection
    audit = (await client.get("/api/v1/audit?limit=1000", headers=auth(world, "admin"))).json()
    actions = {(e["action"], e["target"]) for e in audit["items"]}
    assert ("alert.acknowledge", f"alert:{alert}") not in actions
    assert ("command.valve_close", f"meter:{world.valve_meter_id}") in actions
