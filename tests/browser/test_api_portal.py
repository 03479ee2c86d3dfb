"""The portal in Chromium (Playwright): a consumer and an operator log in, open every
page, and the charts show the numbers the API returns.

Screenshots go to a temporary folder; ``BALANS_SCREENSHOT_DIR=docs/img`` refreshes the ones
the docs show (a test run must not change tracked files)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import uvicorn
from synthetic import fill_building

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_api.users import DEMO_CONSUMER, DEMO_OPERATOR, ensure_demo_users
from balans_balance.groups import generate_building_groups
from balans_core.health import bind_socket
from balans_db.secrets import KeyVault
from balans_db.seed import seed

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(
    os.environ.get("BALANS_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "balans-screenshots")
)
SHOTS.mkdir(parents=True, exist_ok=True)

# a last status per module: a mesh where each module relays for the next ones
MESH = """
insert into module_status (module_serial, ts, battery_mv, rssi_dbm, hops, parent_serial,
                           tamper, error_bits)
select serial, $2, 3000 + (n * 37) % 700, -60 - (n * 7) % 40, 1 + (n - 1) / 40,
       case when n <= 40 then 0 else lag(serial, 40) over (order by serial) end, false, 0
from (select serial, row_number() over (order by serial) as n
      from radio_modules where building_id = $1) m
"""

ALERT = """
insert into alerts (kind, cause_key, building_id, first_hour, last_hour, summary, severity)
values ('balance_excess', 'demo', $1, now() - interval '6 hours', now(),
        'Riser 7: flats draw 18 % less than the riser meter for 6 hours', 'warning')
"""

# balance's daily series for every group of the building (balance itself is not running)
IMBALANCE = """
insert into imbalance_series (group_id, resolution, period_start, unit, balance_value,
                              subscribers_value, imbalance, band_low, band_median, band_high)
select g.id, 'day', d, 'kWh', 1000, 980 - extract(day from d), 20 + extract(day from d),
       -30, 0, 30
from balance_groups g,
     generate_series($2::timestamptz - interval '20 days', $2, interval '1 day') d
where g.building_id = $1
"""


@pytest.fixture(scope="module")
async def portal(database_url: str) -> AsyncIterator[str]:
    """The api on a free port over the demo city with 400 days of synthetic data."""
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        building = await conn.fetchval("select id from buildings where code = 'ref-2a'")
        await fill_building(conn, building, now - timedelta(days=400), now)
        await ensure_demo_users(conn)
        await conn.execute(MESH, building, now)
        await generate_building_groups(conn, building)
        await conn.execute(ALERT, building)
        await conn.execute(IMBALANCE, building, now - timedelta(days=1))
    finally:
        await conn.close()
    app = create_app(ApiSettings(database_url=database_url))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    await task


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run scripts/os-packages.sh (as root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        await chromium.close()


async def _login(browser: Any, portal: str, who: tuple[str, str]) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(portal + "/login")
    await page.fill("input[name=username]", who[0])
    await page.fill("input[name=password]", who[1])
    await page.click("button[type=submit]")
    return page


async def _trace(page: Any, chart: str, index: int = 0) -> dict[str, Any]:
    # a function, not an expression string: the portal's CSP forbids evaluating strings
    await page.wait_for_function(
        "([id, i]) => document.getElementById(id).data?.length > i", arg=[chart, index]
    )
    return await page.evaluate(  # type: ignore[no-any-return]
        f"(() => {{ const t = document.getElementById('{chart}').data[{index}];"
        " return {x: Array.from(t.x), y: Array.from(t.y)}; })()"
    )


async def _api(portal: str, page: Any, path: str) -> Any:
    token = await page.evaluate("sessionStorage.getItem('balans.token')")
    async with httpx.AsyncClient(base_url=portal) as http:
        response = await http.get("/api/v1" + path, headers={"Authorization": f"Bearer {token}"})
        return response.json()


async def test_consumer_pages_show_api_data(portal: str, browser: Any) -> None:
    """The consumer's month and year charts plot exactly the API's profile and history."""
    page = await _login(browser, portal, DEMO_CONSUMER)
    await page.wait_for_url("**/my")
    month = await _trace(page, "chart-month")
    average = await _trace(page, "chart-month", 1)
    year = await _trace(page, "chart-year")
    me = await _api(portal, page, "/auth/me")
    flat = me["flat_ids"][0]
    profile = await _api(portal, page, f"/flats/{flat}/profile?resolution=day")
    history = await _api(portal, page, f"/flats/{flat}/history")
    assert month["y"] == pytest.approx([p["value"] for p in profile["heat"]["points"]])
    assert average["y"] == pytest.approx(
        [p["value"] for p in profile["building_average"]["points"]]
    )
    assert year["y"] == pytest.approx([p["value"] for p in history["current"]["points"]])
    await _trace(page, "chart-ranking")
    assert await page.text_content("#mtd") == f"{profile['month_to_date_kwh']:.1f}"
    await page.screenshot(path=str(SHOTS / "consumer.png"), full_page=True)
    await page.close()


async def test_operator_pages_show_api_data(portal: str, browser: Any) -> None:
    """The operator sees the site map, a building's overview chart, mesh and alert queue."""
    page = await _login(browser, portal, DEMO_OPERATOR)
    await page.wait_for_url("**/ops")
    sites = await _trace(page, "map")
    api_sites = await _api(portal, page, "/sites")
    assert sites["x"] == pytest.approx([s["longitude"] for s in api_sites["items"]])
    await page.screenshot(path=str(SHOTS / "operator-map.png"), full_page=True)
    await page.click("#buildings a >> nth=0")
    await page.wait_for_url("**/ops/buildings/*")
    flats_line = await _trace(page, "chart-overview", 1)
    building_id = int(page.url.rsplit("/", 1)[1])
    overview = await _api(portal, page, f"/buildings/{building_id}/overview")
    assert flats_line["y"] == pytest.approx(
        [p["value"] for p in overview["flats_measured_last_30d"]]
    )
    await page.wait_for_selector("#mesh li")
    imbalance = await _trace(page, "chart-imbalance", 1)
    group = await page.input_value("#group")
    series = await _api(portal, page, f"/balance-groups/{group}/imbalance?resolution=day")
    assert imbalance["y"] == pytest.approx([p["imbalance"] for p in series["points"]])
    await page.screenshot(path=str(SHOTS / "operator-building.png"), full_page=True)
    await page.goto(portal + "/ops/alerts")
    await page.wait_for_selector("#alert-queue tr[data-alert]")
    assert "Riser 7" in await page.text_content("#alert-queue")
    await page.screenshot(path=str(SHOTS / "operator-alerts.png"), full_page=True)
    await page.close()
