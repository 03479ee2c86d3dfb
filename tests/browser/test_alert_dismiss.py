"""An operator dismisses a faulty-sensor alert as a false alarm from its page in Chromium:
the api asks balance over real NATS, balance closes the alert and announces the closing as
dismissed (what allocation follows to measure the pair's hours again; that part is
tests/test_sensor_fault_estimate.py's), and the reloaded page shows it closed, "dismissed"
in its history with the operator's note, and no action left to take."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from nats.aio.msg import Msg

from balans_api.users import DEMO_OPERATOR, ensure_demo_users
from balans_balance.alerts import OUTBOX
from balans_balance.service import serve_alert_actions
from balans_core.nats import connect_nats
from balans_core.outbox import OutboxRelay
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import demo_city
from balans_devstack.eventually import eventually
from balans_protocol import subjects
from balans_protocol.messages import AlertMessage
from balans_protocol.streams import ensure_streams

from .conftest import api_at, open_tab, sign_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]

# $1: the flat pair's module, $2: now, $3: the evidence
FAULTY_SENSOR = """
insert into alerts (kind, cause_key, building_id, module_serial, first_hour, last_hour, summary,
                    evidence, severity, detected_hour, reason_code, reason_params)
select 'faulty_sensor', 'faulty-sensor:' || p.module_serial || ':return', p.building_id,
       p.module_serial, $2::timestamptz - interval '3 days', $2, 'displaced return sensor',
       $3::jsonb, 'warning', $2::timestamptz - interval '2 days', 'faulty_sensor.displaced',
       jsonb_build_object('module', p.module_serial, 'flat', f.number, 'riser', '-',
                          'sensor', 'return', 'deviation_k', 4.2)
from sensor_pairs p join flats f on f.id = p.flat_id
where p.module_serial = $1
returning id
"""


@pytest.fixture(scope="module")
async def dismissable(database_url: str, module_nats_url: str) -> AsyncIterator[dict[str, Any]]:
    """demo-1b with an open faulty_sensor alert on a flat's sensor pair; the api and
    balance's alert actions on a NATS server of this module (no responder of another
    module's database can answer the same subject); the announcements of faulty_sensor
    alerts."""
    await seed(database_url, KeyVault.from_hex(None), demo_city()[2:3])
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    nc = await connect_nats(module_nats_url, "test-alert-dismiss")
    stopping = asyncio.Event()
    announced: list[AlertMessage] = []

    async def on_alert(msg: Msg) -> None:
        announced.append(AlertMessage.model_validate_json(msg.data))

    try:
        async with pool.acquire() as conn:
            await ensure_demo_users(conn)
            module = await conn.fetchval(
                "select min(module_serial) from sensor_pairs where position = 'flat'"
            )
            now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            evidence = {"sensor_fault": "displaced", "sensor": "return", "deviation_k": -4.2}
            alert = await conn.fetchval(FAULTY_SENSOR, module, now, json.dumps(evidence))
        js = nc.jetstream()
        await ensure_streams(js)
        relay = OutboxRelay(pool, js, OUTBOX, "balance", poll_interval_s=0.2)
        relay_task = asyncio.create_task(relay.run(stopping))
        await serve_alert_actions(nc, pool, relay)
        await nc.subscribe(subjects.alert("faulty_sensor"), cb=on_alert)
        async with api_at(database_url, nc) as base:
            yield {"url": base, "alert": alert, "announced": announced, "pool": pool}
        stopping.set()
        await relay_task
    finally:
        stopping.set()
        await nc.drain()
        await pool.close()


async def test_an_operator_dismisses_a_faulty_sensor_alert(
    chromium: Any, dismissable: dict[str, Any]
) -> None:
    base, alert = dismissable["url"], dismissable["alert"]
    tab = await open_tab(chromium, base)
    try:
        await sign_in(tab, base, DEMO_OPERATOR)
        await tab.page.wait_for_url("**/ops")
        page = tab.page
        await page.goto(f"{base}/ops/alerts/{alert}")
        await page.wait_for_selector("#alert-history tr:nth-child(2)")
        reason = await page.text_content("#alert-reason")
        assert "return sensor" in reason
        assert "displaced" in reason
        assert await page.is_enabled("#alert-dismiss")
        await page.click("#alert-dismiss")  # no note: refused on the page, nothing sent
        await page.wait_for_selector("#alert-status:has-text('Write a note')")
        await page.fill("#alert-note", "the installer found the sensor seated")
        await page.click("#alert-dismiss")
        await page.wait_for_selector("#alert-history tr:has-text('dismissed (a false alarm)')")
        history = await page.inner_text("#alert-history")
        assert "the installer found the sensor seated" in history
        assert DEMO_OPERATOR[0] in history
        assert "Closed" in await page.inner_text("#alert-facts")
        for button in ("#alert-acknowledge", "#alert-resolve", "#alert-dismiss"):
            assert await page.is_disabled(button)
        assert tab.errors == []
    finally:
        await tab.close()
    state, resolved_by = await dismissable["pool"].fetchrow(
        "select state, resolved_by from alerts where id = $1", alert
    )
    assert state == "closed"
    assert resolved_by.endswith(DEMO_OPERATOR[0])
    announced: list[AlertMessage] = dismissable["announced"]
    await eventually("the dismissal announced", lambda: bool(announced))
    assert [(m.alert_id, m.state, m.resolution) for m in announced] == [
        (alert, "closed", "dismissed")
    ]
