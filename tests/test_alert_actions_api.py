"""An operator's acknowledge and resolve go from the api to balance over real NATS: balance
alone writes its alerts and announces the closing; the api audits the action."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from nats.aio.msg import Msg

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_balance.alerts import OUTBOX
from balans_balance.service import serve_alert_actions
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import AlertMessage
from balans_protocol.streams import ensure_streams

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    await seed(database_url, KeyVault.from_hex(None))
    async with asyncpg.create_pool(database_url, min_size=1, max_size=3) as p:
        async with p.acquire() as conn:
            await create_user(conn, "op", PASSWORD, "operator", None)
        yield p


async def _alert(pool: asyncpg.Pool, cause: str) -> int:
    building = await pool.fetchval("select id from buildings order by id limit 1")
    return int(
        await pool.fetchval(
            """insert into alerts (kind, cause_key, building_id, first_hour, last_hour, summary)
               values ('leak', $1, $2, now(), now(), 'water flows at night') returning id""",
            cause,
            building,
        )
    )


async def test_operator_actions_reach_balance(
    database_url: str, nats_url: str, pool: asyncpg.Pool
) -> None:
    alert = await _alert(pool, "api-actions")
    false_alarm = await _alert(pool, "api-dismiss")
    nc = await connect_nats(nats_url, "test-alert-actions-api")
    stopping = asyncio.Event()
    announced: list[AlertMessage] = []
    js = nc.jetstream()
    await ensure_streams(js)
    relay = OutboxRelay(pool, js, OUTBOX, "balance", poll_interval_s=0.2)
    relay_task = asyncio.create_task(relay.run(stopping))

    async def on_alert(msg: Msg) -> None:
        announced.append(AlertMessage.model_validate_json(msg.data))

    try:
        balance = await serve_alert_actions(nc, pool, relay)
        watch = await nc.subscribe(subjects.ALERTS_ALL, cb=on_alert)
        app = create_app(ApiSettings(database_url=database_url), nats=nc)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
                token = (
                    await http.post(
                        "/api/v1/auth/token", data={"username": "op", "password": PASSWORD}
                    )
                ).json()["access_token"]
                h = {"Authorization": f"Bearer {token}"}
                base = f"/api/v1/alerts/{alert}"
                ack = await http.post(f"{base}/acknowledge", json={"note": "seen"}, headers=h)
                resolved = await http.post(f"{base}/resolve", json={"note": "fixed"}, headers=h)
                dismissed = await http.post(
                    f"/api/v1/alerts/{false_alarm}/dismiss", json={"note": "sensor fine"}, headers=h
                )
                history = (await http.get(f"/api/v1/alerts/{false_alarm}", headers=h)).json()
                missing = await http.post("/api/v1/alerts/999999/resolve", json={}, headers=h)
                odd = {
                    path: (await http.post(path, json=body, headers=h)).status_code
                    for path, body in (
                        (f"{base}/resolve", {"note": "x" * 2001}),
                        (f"{base}/resolve", {"note": 5}),
                        ("/api/v1/alerts/-1/acknowledge", {}),
                        (f"/api/v1/alerts/{2**63}/acknowledge", {}),
                        ("/api/v1/alerts/abc/acknowledge", {}),
                    )
                }
        await eventually(
            "both closings announced",
            lambda: {m.alert_id for m in announced if m.state == "closed"} >= {alert, false_alarm},
        )
        await watch.unsubscribe()
        await balance.unsubscribe()
    finally:
        stopping.set()
        await nc.drain()
    await relay_task
    assert ack.status_code == 200, ack.text
    assert (ack.json()["state"], ack.json()["acknowledged_by"]) == ("open", "user:op")
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["state"] == "closed"
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["state"] == "closed"
    # how each was closed goes out with the closing (allocation restores a false alarm's hours)
    resolution = {m.alert_id: m.resolution for m in announced if m.state == "closed"}
    assert resolution == {alert: "resolved", false_alarm: "dismissed"}
    assert [e["action"] for e in history["history"]] == ["opened", "dismissed"]
    assert missing.status_code == 404
    assert all(400 <= code < 500 for code in odd.values()), odd
    audit = await pool.fetch(
        "select action, detail->>'note' as note from audit_log where target = $1 order by id",
        f"alert:{alert}",
    )
    assert [(r["action"], r["note"]) for r in audit] == [
        ("alert.acknowledge", "seen"),
        ("alert.resolve", "fixed"),
    ]
