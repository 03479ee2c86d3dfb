"""Account holders and verification in Chromium: from the building's page the operator
records a tenant change (a refusal shows each problem and writes nothing; a good one
closes the old account and opens the new one on the same day), and the verification page
lists a meter that is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from .conftest import Tab

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]


async def _accounts(database_url: str, flat: str) -> list[tuple[str, Any, Any]]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            """select a.number, a.opened_on, a.closed_on from accounts a
               join flats f on f.id = a.flat_id join buildings b on b.id = f.building_id
               where b.code = 'demo-1a' and f.number = $1 order by a.id""",
            flat,
        )
        return [(r["number"], r["opened_on"], r["closed_on"]) for r in rows]
    finally:
        await conn.close()


async def test_a_tenant_change_is_refused_then_recorded(
    operator_1a: Tab, portal_1a: tuple[str, int], database_url: str
) -> None:
    base, building_id = portal_1a
    page = operator_1a.page
    await page.goto(f"{base}/ops/buildings/{building_id}")
    await page.click("#accounts-link")
    await page.wait_for_url(f"**/ops/buildings/{building_id}/accounts")
    await page.wait_for_selector("#accounts tr[data-account]")
    flat = await page.eval_on_selector("#change-flat", "(s) => s.options[0].value")
    before = await _accounts(database_url, flat)
    taken = before[0][0]
    on = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    await page.fill("#change-form input[name=on]", on)
    await page.fill("#change-form input[name=number]", taken)  # taken: refused
    await page.fill("#change-form input[name=holder_name]", "New tenant")
    operator_1a.expected_statuses.add(422)
    await page.click("#change-form button[type=submit]")
    await page.wait_for_selector("#accounts-errors li")
    assert "account.number" in await page.inner_text("#accounts-errors")
    assert await _accounts(database_url, flat) == before
    await page.fill("#change-form input[name=number]", "demo-new-tenant")
    await page.click("#change-form button[type=submit]")
    await page.wait_for_selector("#accounts tr[data-account='demo-new-tenant']")
    after = await _accounts(database_url, flat)
    assert [a[0] for a in after] == [taken, "demo-new-tenant"]
    assert after[0][2].isoformat() == on
    assert after[1][1].isoformat() == on
    assert operator_1a.errors == []


async def test_the_verification_page_lists_a_due_meter(
    operator_1a: Tab, portal_1a: tuple[str, int], database_url: str
) -> None:
    base, building_id = portal_1a
    conn = await asyncpg.connect(database_url)
    try:
        serial = await conn.fetchval(
            """update meters set verified_on = current_date - interval '5 years' + interval '7 days'
               where id = (select min(id) from meters where building_id = $1 and utility = 'heat')
               returning serial""",
            building_id,
        )
    finally:
        await conn.close()
    page = operator_1a.page
    await page.goto(f"{base}/ops/buildings/{building_id}")
    await page.click("text=Verification due")
    await page.wait_for_url("**/ops/verification")
    await page.fill("#verification-days", "30")
    await page.click("#verification-form button[type=submit]")
    await page.wait_for_selector(f"#verification tr[data-serial='{serial}']")
    assert operator_1a.errors == []
