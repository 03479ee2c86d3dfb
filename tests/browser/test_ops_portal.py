"""The operator's investigation pages in Chromium: the alert queue and one alert's detail
(its evidence drawn as charts), the search, a flat's page with its hourly explanation, and
the map of buildings (with and without its tiles). The pages' figures equal the API's and
no page logs a console error.

Screenshots go to a temporary folder; ``BALANS_SCREENSHOT_DIR=docs/img`` refreshes the ones
the docs show."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from synthetic import fill_building

from balans_api.users import DEMO_OPERATOR, ensure_demo_users
from balans_balance.groups import generate_building_groups
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S

from .conftest import TILES, Tab, api_at, open_tab, serve_plain_tiles, sign_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(
    os.environ.get("BALANS_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "balans-screenshots")
)
SHOTS.mkdir(parents=True, exist_ok=True)

# $2: now, $3: when the fault began, $4: when it was detected
STUCK = """
insert into alerts (kind, cause_key, building_id, group_id, meter_id, first_hour, last_hour,
                    summary, evidence, severity, detected_hour, reason_code, reason_params)
select 'stuck_meter', 'meter:' || m.id, m.building_id, $5, m.id, $3::timestamptz, $2, 'stuck meter',
       $6::jsonb, 'warning', $4, 'stuck_meter.not_counted',
       jsonb_build_object('meter_serial', m.serial, 'since', $3::timestamptz::date,
                          'peer_use', 41.5,
                          'unit', m.unit)
from meters m where m.id = $1
returning id
"""

LEAK = """
insert into alerts (kind, cause_key, building_id, group_id, first_hour, last_hour, summary,
                    evidence, severity, detected_hour, reason_code, reason_params)
select 'leak', 'group:' || g.id || ':leak', g.building_id, g.id, $3, $2, 'leak', $5::jsonb,
       'critical', $4, 'leak.step', jsonb_build_object('group', g.name, 'excess_pct', 6.5)
from balance_groups g where g.id = $1
returning id
"""

IMBALANCE = """
insert into imbalance_series (group_id, resolution, period_start, unit, balance_value,
                              subscribers_value, imbalance, band_low, band_median, band_high)
select $1, 'day', d, 'kWh', 1000, 940 - extract(day from d), 60 + extract(day from d), -40, 0, 40
from generate_series($2::timestamptz - interval '25 days', $2, interval '1 day') d
"""

MESH = """
insert into module_status (module_serial, ts, battery_mv, rssi_dbm, hops, parent_serial,
                           tamper, error_bits)
select serial, $2, 3100 + (serial % 500)::int, -70, 1, 0, false, 0
from radio_modules where building_id = $1
"""


@pytest.fixture(scope="module")
async def portal(database_url: str) -> AsyncIterator[dict[str, Any]]:
    """The api over the demo city; the reference building with 30 days of synthetic data,
    its balance groups, a stuck flat meter with a valve and a group leak."""
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_demo_users(conn)
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        building = await conn.fetchval("select id from buildings where code = 'ref-2a'")
        await fill_building(conn, building, now - timedelta(days=30), now)
        await conn.execute(MESH, building, now)
        await generate_building_groups(conn, building)
        group = await conn.fetchval(
            "select min(id) from balance_groups where building_id = $1", building
        )
        await conn.execute(IMBALANCE, group, now - timedelta(days=1))
        meter = await conn.fetchrow(
            """select m.id, m.flat_id from meters m
               where m.building_id = $1 and m.has_valve and m.flat_id is not null
               order by m.id limit 1""",
            building,
        )
        day = timedelta(days=1)
        predicted = {
            "loss": 1.0,
            "series_from": (now - 12 * timedelta(hours=1)).isoformat(),
            "peers_predicted": [None] * 4 + [0.05 + 0.01 * h for h in range(8)],
        }
        stuck = await conn.fetchval(
            STUCK, meter["id"], now, now - 9 * day, now - 8 * day, group, json.dumps(predicted)
        )
        evidence = {
            "coefficient": 61.2,
            "series_from": (now - timedelta(hours=5)).isoformat(),
            "imbalance_share": [0.01, 0.02, 0.06, None, 0.07, 0.065],
        }
        leak = await conn.fetchval(
            LEAK, group, now, now - 4 * day, now - 3 * day, json.dumps(evidence)
        )
        account = await conn.fetchval(
            "select number from accounts where flat_id = $1 limit 1", meter["flat_id"]
        )
    finally:
        await conn.close()
    async with api_at(database_url) as base:
        yield {
            "url": base,
            "stuck": stuck,
            "leak": leak,
            "flat": meter["flat_id"],
            "account": account,
            "building": building,
        }


@pytest.fixture(scope="module")
async def operator(chromium: Any, portal: dict[str, Any]) -> AsyncIterator[Tab]:
    """The demo operator, signed in once; OSM's tiles are served as plain tiles."""
    tab = await open_tab(chromium, portal["url"])
    await serve_plain_tiles(tab.context)
    await sign_in(tab, portal["url"], DEMO_OPERATOR)
    await tab.page.wait_for_url("**/ops")
    yield tab
    await tab.close()


@pytest.fixture
async def page(operator: Tab) -> AsyncIterator[Any]:
    """The operator's page for one test: no console error by its end."""
    operator.errors.clear()
    yield operator.page
    assert operator.errors == []


async def _api(portal: dict[str, Any], page: Any, path: str) -> Any:
    token = await page.evaluate("sessionStorage.getItem('balans.token')")
    base = portal["url"] + "/api/v1"
    async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
        response = await http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def _trace(page: Any, chart: str, index: int, *keys: str) -> dict[str, list[Any]]:
    await page.wait_for_function(
        "([id, i]) => document.getElementById(id)?.data?.length > i", arg=[chart, index]
    )
    return await page.evaluate(  # type: ignore[no-any-return]
        "([id, i, keys]) => Object.fromEntries(keys.map((k) =>"
        " [k, Array.from(document.getElementById(id).data[i][k])]))",
        [chart, index, list(keys)],
    )


async def test_alert_queue_and_detail(portal: dict[str, Any], page: Any) -> None:
    """The queue names the building and when the fault began; the detail says the one
    reason in words, draws the meter's use and the evidence kept by balance exactly as the
    API gives them, and lists the history."""
    await page.goto(portal["url"] + "/ops/alerts")
    await page.wait_for_selector(f"#alert-queue tr[data-alert='{portal['stuck']}']")
    row = page.locator(f"#alert-queue tr[data-alert='{portal['stuck']}']")
    summary = await _api(portal, page, f"/alerts/{portal['stuck']}")
    assert summary["building_name"] in await row.text_content()
    assert "leak" in await page.text_content("#alert-counts")
    await row.locator("a").first.click()
    await page.wait_for_url(f"**/ops/alerts/{portal['stuck']}")
    await page.wait_for_selector("#alert-history tr:nth-child(2)")
    reason = await page.text_content("#alert-reason")
    assert f"meter {summary['meter_serial']} has not counted since" in reason
    assert "41.5" in reason
    meter = await _trace(page, "evidence-meter", 0, "y")
    [series] = [s for s in summary["series"] if s["name"] == "meter"]
    assert meter["y"] == pytest.approx(series["values"])
    peers = await _trace(page, "evidence-peers", 1, "y")
    [predicted] = [s for s in summary["series"] if s["name"] == "peers_predicted"]
    assert peers["y"] == predicted["values"]
    assert await page.is_visible("#alert-valve")
    await page.screenshot(path=str(SHOTS / "operator-alert.png"), full_page=True)
    await page.goto(portal["url"] + f"/ops/alerts/{portal['leak']}")
    kept = await _trace(page, "evidence-imbalance_share", 0, "y")
    # balance's shares as % (a gap stays a gap)
    assert [None if v is None else round(v, 6) for v in kept["y"]] == [1, 2, 6, None, 7, 6.5]
    band = await _trace(page, "evidence-imbalance", 1, "y")
    leak = await _api(portal, page, f"/alerts/{portal['leak']}")
    [imbalance] = [s for s in leak["series"] if s["name"] == "imbalance"]
    assert band["y"] == pytest.approx(imbalance["values"])
    assert "6.5 %" in await page.text_content("#alert-reason")


async def test_search_and_flat_page(portal: dict[str, Any], page: Any) -> None:
    """The search box finds the flat by its account number; the flat page lists the API's
    meters with their valve state and the open alert, and its hourly chart is the API's
    explanation hour by hour."""
    await page.fill("#nav input[name=q]", portal["account"])
    await page.press("#nav input[name=q]", "Enter")
    await page.wait_for_url("**/ops/search?q=*")
    await page.click(f"#search-results a[href='/ops/flats/{portal['flat']}']")
    await page.wait_for_url(f"**/ops/flats/{portal['flat']}")
    card = await _api(portal, page, f"/flats/{portal['flat']}/card")
    await page.wait_for_selector("#flat-meters tr[data-meter]")
    assert await page.locator("#flat-meters tr[data-meter]").count() == len(card["meters"])
    valve = next(m for m in card["meters"] if m["has_valve"])
    assert valve["valve_state"] == "open"
    assert "open" in await page.text_content(f"#flat-meters tr[data-meter='{valve['id']}']")
    assert await page.locator(f"#flat-alerts a[href='/ops/alerts/{portal['stuck']}']").count()
    trail = await _trace(page, "chart-trail", 0, "y")
    start, end = await page.input_value("#trail-from"), await page.input_value("#trail-to")
    x = await _api(portal, page, f"/flats/{portal['flat']}/explain?from={start}&to={end}")
    assert trail["y"] == pytest.approx([h["measured_kwh"] for h in x["hours"]])
    assert await page.locator("#trail-hours tr").count() == len(x["hours"]) + 1
    await page.screenshot(path=str(SHOTS / "operator-flat.png"), full_page=True)


async def test_map_opens_a_building(portal: dict[str, Any], page: Any) -> None:
    """One marker per building on the tile map (red with open alerts); a click on a marker
    opens that building; every riser of the reference building is labelled."""
    await page.goto(portal["url"] + "/ops")
    buildings = await _api(portal, page, "/buildings")
    alerted = await _trace(page, "map", 1, "lat", "lon", "customdata")
    calm = await _trace(page, "map", 0, "customdata")
    assert alerted["customdata"] == [portal["building"]]
    assert sorted(calm["customdata"] + alerted["customdata"]) == sorted(
        b["id"] for b in buildings["items"]
    )
    await page.wait_for_function(
        "() => document.getElementById('map')._fullLayout?.map?.style === 'open-street-map'"
    )
    await page.wait_for_function(
        "() => document.getElementById('map')._fullLayout.map._subplot.map.areTilesLoaded()"
    )
    await page.screenshot(path=str(SHOTS / "operator-map.png"), full_page=True)
    point = await page.evaluate(
        """([lon, lat]) => {
             const map = document.getElementById('map')._fullLayout.map._subplot.map;
             const p = map.project([lon, lat]);
             const box = map.getCanvas().getBoundingClientRect();
             return [box.left + p.x, box.top + p.y];
           }""",
        [alerted["lon"][0], alerted["lat"][0]],
    )
    await page.mouse.click(*point)
    await page.wait_for_url(f"**/ops/buildings/{portal['building']}")
    ranking = await _api(portal, page, f"/buildings/{portal['building']}/ranking")
    await _trace(page, "chart-ranking", 1, "y")
    ticks = await page.eval_on_selector_all(
        "#chart-ranking .ytick text", "(ts) => ts.map((t) => t.textContent)"
    )
    assert len(ticks) == len(ranking["groups"]) > 30


async def test_map_without_tiles(chromium: Any, portal: dict[str, Any]) -> None:
    """Offline (every tile refused) the buildings' markers are drawn all the same; the
    only console errors are the refused tiles."""
    tab = await open_tab(chromium, portal["url"])
    await tab.context.route(TILES, lambda route: route.abort())
    await sign_in(tab, portal["url"], DEMO_OPERATOR)
    await tab.page.wait_for_url("**/ops")
    markers = await _trace(tab.page, "map", 0, "customdata")
    assert markers["customdata"]
    # the markers' layers render although no tile came
    await tab.page.wait_for_function(
        """(n) => document.getElementById('map')._fullLayout?.map?._subplot?.map
                    ?.queryRenderedFeatures().length >= n""",
        arg=len(markers["customdata"]),
    )
    await tab.page.wait_for_function(
        "() => document.getElementById('map-note').textContent.includes('offline')"
    )
    await tab.page.screenshot(path=str(SHOTS / "operator-map-offline.png"))
    assert [e for e in tab.errors if "Failed to load resource" not in e] == []
    await tab.close()
