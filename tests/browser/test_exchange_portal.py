"""Recording a meter exchange in Chromium: the operator opens the form from the building's
page, a refusal shows each problem and writes nothing, a good record closes the old
meter's channel period, opens the new one's and appears in the building's list; the
resident of the flat sees the exchange marked on the month's charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from balans_api.users import DEMO_CONSUMER

from .conftest import Tab, open_tab, sign_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]


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


async def _consumers_heat_meter(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        serial: str = await conn.fetchval(
            """select m.serial from users u join accounts a on a.id = u.account_id
               join meters m on m.flat_id = a.flat_id
               where u.username = $1 and m.utility = 'heat' order by m.id limit 1""",
            DEMO_CONSUMER[0],
        )
        return serial
    finally:
        await conn.close()


async def test_an_exchange_is_refused_then_recorded_from_the_form(
    chromium: Any, operator_1a: Tab, portal_1a: tuple[str, int], database_url: str
) -> None:
    base, building_id = portal_1a
    page = operator_1a.page
    await page.goto(f"{base}/ops/buildings/{building_id}")
    await page.click("#exchange-link")
    await page.wait_for_url(f"**/ops/buildings/{building_id}/exchange")
    await page.wait_for_selector("#old-meter option", state="attached")
    old = await _consumers_heat_meter(database_url)  # the demo resident's flat's
    await page.select_option("#old-meter", old)
    # minutes ago: inside the month the resident's page shows
    at = (datetime.now(UTC) - timedelta(minutes=2)).astimezone().strftime("%Y-%m-%dT%H:%M")
    await page.fill("#at", at)
    await page.fill("input[name=final_register]", "1234.5")
    await page.fill("input[name=new_serial]", f"{old}-b")
    await page.fill("input[name=start_register]", "2")
    # first as an existing meter, which it is not: refused, each problem named
    operator_1a.expected_statuses.add(422)
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
    assert operator_1a.errors == []
    resident = await open_tab(chromium, base)
    await sign_in(resident, base, DEMO_CONSUMER)
    await resident.page.wait_for_url("**/my")
    for chart in ("chart-month", "chart-meters"):
        await resident.page.wait_for_function(
            "(id) => document.getElementById(id).layout?.annotations?.length > 0", arg=chart
        )
        marks = await resident.page.evaluate(
            "(id) => document.getElementById(id).layout.annotations.map((a) => a.text)", chart
        )
        assert any(f"{old}-b" in m for m in marks), marks
    assert resident.errors == []
    await resident.close()
