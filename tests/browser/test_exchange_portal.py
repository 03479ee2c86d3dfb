"""Recording a meter exchange in Chromium: the operator opens the form from the building's
page, a refusal shows each problem and writes nothing, a good record closes the old
meter's channel period, opens the new one's and appears in the building's list."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import uvicorn

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import DEMO_OPERATOR, ensure_demo_users
from balans_core.health import bind_socket
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import demo_city

from .conftest import Tab, open_tab, sign_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
async def portal(database_url: str) -> AsyncIterator[tuple[str, int]]:
    """The api on a free port over demo-1a (no readings), with the demo logins."""
    await seed(database_url, KeyVault.from_hex(None), demo_city()[1:2])
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_demo_users(conn)
        building_id = await conn.fetchval("select id from buildings where code = 'demo-1a'")
    finally:
        await conn.close()
    app = create_app(ApiSettings(database_url=database_url))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}", building_id
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def operator(chromium: Any, portal: tuple[str, int]) -> AsyncIterator[Tab]:
    base, _ = portal
    tab = await open_tab(chromium, base)
    await sign_in(tab, base, DEMO_OPERATOR)
    await tab.page.wait_for_url("**/ops")
    yield tab
    await tab.close()


async def _channels(database_url: str, serial: str) -> list[Any]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(
            """select m.serial, c.valid_from, c.valid_to from channels c
               join meters m on m.id = c.meter_id
               where (c.module_serial, c.input) = (
                 select module_serial, input from channels c2 join meters m2 on m2.id = c2.meter_id
                 where m2.serial = $1) order by c.valid_from nulls first""",
            serial,
        )
    finally:
        await conn.close()


async def test_an_exchange_is_refused_then_recorded_from_the_form(
    operator: Tab, portal: tuple[str, int], database_url: str
) -> None:
    base, building_id = portal
    page = operator.page
    await page.goto(f"{base}/ops/buildings/{building_id}")
    await page.click("#exchange-link")
    await page.wait_for_url(f"**/ops/buildings/{building_id}/exchange")
    await page.wait_for_selector("#old-meter option", state="attached")
    old = await page.eval_on_selector(
        "#old-meter", "(s) => [...s.options].find((o) => o.value.startsWith('heat-')).value"
    )
    await page.select_option("#old-meter", old)
    at = (datetime.now(UTC) - timedelta(days=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    await page.fill("#at", at)
    await page.fill("input[name=final_register]", "1234.5")
    await page.fill("input[name=new_serial]", f"{old}-b")
    await page.fill("input[name=start_register]", "2")
    # first as an existing meter, which it is not: refused, each problem named
    operator.expected_statuses.add(422)
    await page.check("input[name=existing]")
    await page.click("#exchange-form button[type=submit]")
    await page.wait_for_selector("#exchange-errors li")
    assert "new_serial" in await page.inner_text("#exchange-errors")
    assert len(await _channels(database_url, old)) == 1
    # then creating it
    await page.uncheck("input[name=existing]")
    await page.click("#exchange-form button[type=submit]")
    await page.wait_for_selector(f"#exchanges tr[data-new-meter='{old}-b']")
    assert "Recorded" in await page.inner_text("#exchange-status")
    periods = await _channels(database_url, old)
    assert [r["serial"] for r in periods] == [old, f"{old}-b"]
    assert periods[0]["valid_to"] == periods[1]["valid_from"] is not None
    assert periods[1]["valid_to"] is None
    assert operator.errors == []
