"""The portal in Chromium (Playwright): a consumer and an operator log in, open every
page, and the charts show the numbers the API returns.

Screenshots go to a temporary folder; ``BALANS_SCREENSHOT_DIR=docs/img`` refreshes the ones
the docs show (a test run must not change tracked files)."""

from __future__ import annotations

import asyncio
import io
import os
import re
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader
from synthetic import fill_building

from balans_api.i18n import CATALOGS
from balans_api.series import bucket_start
from balans_api.users import DEMO_CONSUMER, DEMO_OPERATOR, ensure_demo_users
from balans_balance.groups import generate_building_groups
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.documents import serve_documents
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.render import CATALOGS as BILLING
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S
from balans_i18n.catalogs import COOKIE, LOCALES, Catalogs
from balans_i18n.localizer import Localizer

from .conftest import api_with_billing, serve_plain_tiles

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]

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
insert into alerts (kind, cause_key, building_id, group_id, first_hour, last_hour, summary,
                    severity)
values ('balance_excess', 'demo', $1,
        (select min(id) from balance_groups where building_id = $1),
        now() - interval '6 hours', now(),
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


# balance's degree-day forecast for one meter of the consumer's building this month
DEGREE_DAYS = """
insert into forecasts (scope, scope_id, month, unit, consumed_to_date, forecast_total,
                       hdd_to_date, hdd_month, as_of)
select 'meter', min(id), $2, 'kWh', 1, 2, 95.5, 520.0, now() from meters where building_id = $1
on conflict do nothing
"""


@pytest.fixture(scope="module")
async def portal(database_url: str, nats_url: str) -> AsyncIterator[str]:
    """The api on a free port over the demo city with 400 days of synthetic data, the
    consumer's last two months invoiced, and billing answering for invoice documents."""
    await seed(database_url, KeyVault.from_hex(None))
    conn = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        building = await conn.fetchval("select id from buildings where code = 'ref-2a'")
        await ensure_demo_users(conn)
        # the demo consumer's building (the flat with the most meters) has data too
        home = await conn.fetchval(
            """select f.building_id from users u join accounts a on a.id = u.account_id
               join flats f on f.id = a.flat_id where u.username = $1""",
            DEMO_CONSUMER[0],
        )
        for b in {building, home}:
            await fill_building(conn, b, now - timedelta(days=400), now)
        await conn.execute(DEGREE_DAYS, home, now.date().replace(day=1))
        await conn.execute(MESH, building, now)
        await generate_building_groups(conn, building)
        await conn.execute(ALERT, building)
        await conn.execute(IMBALANCE, building, now - timedelta(days=1))
        await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
        tz = await conn.fetchval(
            "select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1",
            home,
        )
        for back in (2, 1):
            month = (now.year * 12 + now.month - 1 - back) % 12 + 1
            year = (now.year * 12 + now.month - 1 - back) // 12
            await bill_building(conn, home, *month_bounds(year, month, tz))
    finally:
        await conn.close()
    async with api_with_billing(database_url, nats_url, serve_documents) as base:
        yield base


@pytest.fixture
def browser(chromium: Any) -> Any:
    """The session's Chromium (tests/browser/conftest.py)."""
    return chromium


async def _login(browser: Any, portal: str, who: tuple[str, str]) -> Any:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await serve_plain_tiles(page)
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


async def _map(page: Any) -> None:
    """The map's markers are drawn (its tiles are refused: no network in tests)."""
    await page.wait_for_function(
        "() => document.getElementById('map').data?.some((t) => t.lat.length)"
    )


async def _api(portal: str, page: Any, path: str) -> Any:
    token = await page.evaluate("sessionStorage.getItem('balans.token')")
    async with httpx.AsyncClient(base_url=portal, timeout=HTTP_TIMEOUT_S) as http:
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
    heat = profile["heat"]
    assert month["y"] == pytest.approx(heat["values"])
    assert average["y"] == pytest.approx(profile["building_average"]["values"])
    assert year["y"] == pytest.approx(history["current"]["values"])
    # the days of the columnar series (start + i days in the site's calendar) as its wall clock
    start = datetime.fromisoformat(heat["start"])
    zone = ZoneInfo(heat["time_zone"])
    assert month["x"] == [
        f"{bucket_start(start, i, 'day', heat['time_zone']).astimezone(zone):%Y-%m-%d %H:%M:%S}"
        for i in range(len(heat["values"]))
    ]
    await _trace(page, "chart-ranking")
    # a day of the month chart clicked: the explanation of that day alone
    await page.locator("#chart-month").scroll_into_view_if_needed()
    bar = await page.locator("#chart-month .bars path").first.bounding_box()
    await page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
    await page.wait_for_function(
        "() => document.querySelector('#explain-parts th')?.textContent.startsWith('Your heat on')"
    )
    english = Localizer("en", CATALOGS)
    assert await page.text_content("#mtd") == english.quantity(profile["month_to_date_kwh"], "kWh")
    await page.screenshot(path=str(SHOTS / "consumer.png"), full_page=True)
    await page.close()


async def test_operator_pages_show_api_data(portal: str, browser: Any) -> None:
    """The operator sees the site map, a building's overview chart, mesh and alert queue."""
    page = await _login(browser, portal, DEMO_OPERATOR)
    await page.wait_for_url("**/ops")
    await _map(page)
    await page.screenshot(path=str(SHOTS / "operator-map.png"), full_page=True)
    await page.click("#buildings a >> nth=0")
    await page.wait_for_url("**/ops/buildings/*")
    flats_line = await _trace(page, "chart-overview", 1)
    building_id = int(page.url.rsplit("/", 1)[1])
    overview = await _api(portal, page, f"/buildings/{building_id}/overview")
    assert flats_line["y"] == pytest.approx(overview["flats_measured_last_30d"]["values"])
    await page.wait_for_selector("#mesh li")
    imbalance = await _trace(page, "chart-imbalance", 1)
    group = await page.input_value("#group")
    series = await _api(portal, page, f"/balance-groups/{group}/imbalance?resolution=day")
    # a partial day is left out of the line (drawn apart), never plotted as a dip
    assert imbalance["y"] == [
        None if i in series["partial"] else v for i, v in enumerate(series["imbalance"])
    ]
    shapes = await page.evaluate(
        "() => (document.getElementById('chart-imbalance').layout.shapes || []).length"
    )
    assert series["alert_spans"]  # the fixture's alert, on the group shown first
    assert shapes == len(series["alert_spans"])
    await page.screenshot(path=str(SHOTS / "operator-building.png"), full_page=True)
    await page.goto(portal + "/ops/alerts")
    await page.wait_for_selector("#alert-queue tr[data-alert]")
    assert "Reference block" in await page.text_content("#alert-queue")
    await page.screenshot(path=str(SHOTS / "operator-alerts.png"), full_page=True)
    await page.close()


# every visible text node of the page, but for data shown as it is stored (alert summaries
# written by balance, the user's name, the brand and the languages' own names)
VISIBLE_TEXT = """() => {
  const skip = (e) => e.closest('.data, #who, .brand, #lang, .modebar, script, style');
  const out = [];
  const walk = (root) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      if (n.shadowRoot) walk(n.shadowRoot);  // the invoice document lives in a shadow root
      if (n.nodeType !== Node.TEXT_NODE) continue;
      const text = n.textContent.trim();
      if (text && !skip(n.parentElement)) out.push(text);
    }
  };
  walk(document.body);
  return out;
}"""


def _untranslated(texts: list[str], locale: str, catalogs: Catalogs = CATALOGS) -> list[str]:
    """Texts that contain an English message of the catalogs where ``locale`` says it
    differently (each part between placeholders, as a whole word)."""
    translated = catalogs.messages(locale)
    found = []
    for msgid in catalogs.messages("en"):
        if translated.get(msgid, msgid) == msgid:
            continue  # the same in both languages (Concentrator, operator, Gcal in Romanian)
        for part in re.split(r"\{\w+\}", msgid):
            part = part.strip(" ,.:()")
            if len(part) < 3 or part in translated[msgid]:
                continue  # too short to tell, or a word both languages use ("per")
            pattern = re.compile(rf"(?<![\w-]){re.escape(part)}(?![\w-])")
            found += [f"{part!r} in {text!r}" for text in texts if pattern.search(text)]
    return found


async def _resident(browser: Any, portal: str, locale: str) -> tuple[Any, Any, list[str]]:
    """A browser context in ``locale`` (its cookie), logged in as the demo consumer; the
    list collects console errors and uncaught exceptions."""
    browser_locale = {"ro": "ro-MD", "ru": "ru-RU", "en": "en-GB"}[locale]
    context = await browser.new_context(
        viewport={"width": 1280, "height": 900}, locale=browser_locale, accept_downloads=True
    )
    await context.add_cookies([{"name": COOKIE, "value": locale, "url": portal}])
    await serve_plain_tiles(context)
    page = await context.new_page()
    errors: list[str] = []

    def console_error(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", console_error)
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(portal + "/login")
    return context, page, errors


@pytest.mark.parametrize("locale", LOCALES)
async def test_consumer_page_in_each_language(portal: str, browser: Any, locale: str) -> None:
    """The consumer page in Romanian, Russian and English: no English message of the
    catalogs left in the other two, no Latin word at all in Russian (beyond data and the
    currency code), numbers in the locale's format, no console error."""
    context, page, errors = await _resident(browser, portal, locale)
    assert await page.get_attribute("html", "lang") == locale
    await page.fill("input[name=username]", DEMO_CONSUMER[0])
    await page.fill("input[name=password]", DEMO_CONSUMER[1])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/my")
    await _trace(page, "chart-ranking")
    await _trace(page, "chart-year")
    for selector in ("#explain-parts tr", "#statement tr", "#invoices tr", "#alerts li"):
        await page.wait_for_selector(selector)
    texts = await page.evaluate(VISIBLE_TEXT)
    assert len(texts) > 50
    if locale != "en":
        assert _untranslated(texts, locale) == []
    if locale == "ru":
        latin = [t for t in texts if re.search(r"[A-Za-z]{2,}", t.replace("MDL", ""))]
        assert latin == []
    me = await _api(portal, page, "/auth/me")
    profile = await _api(portal, page, f"/flats/{me['flat_ids'][0]}/profile?resolution=day")
    lang = Localizer(locale, CATALOGS)
    assert await page.text_content("#mtd") == lang.quantity(profile["month_to_date_kwh"], "kWh")
    assert errors == []
    await page.screenshot(path=str(SHOTS / f"consumer-{locale}.png"), full_page=True)
    await context.close()


async def test_language_switcher_is_remembered(portal: str, browser: Any) -> None:
    """Choosing Русский in the header reloads the page in Russian and keeps it (cookie)."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(portal + "/login")
    assert await page.text_content("button[type=submit]") == "Sign in"  # browser asks for English
    async with page.expect_navigation():
        await page.select_option("#lang", "ru")
    assert await page.text_content("button[type=submit]") == "Вход"
    await page.goto(portal + "/login")
    assert await page.get_attribute("html", "lang") == "ru"
    assert {c["name"]: c["value"] for c in await context.cookies()}[COOKIE] == "ru"
    await context.close()


async def test_language_kept_on_the_user_row(portal: str, browser: Any) -> None:
    """Chosen signed in (settings page), the language follows the user to a new browser:
    the login sets it from the user row; the monthly e-mail opt-out is kept beside it."""
    page = await _login(browser, portal, DEMO_OPERATOR)
    await page.wait_for_url("**/ops")
    await page.goto(portal + "/my/settings")
    # the form is filled from the user row first: a choice made before would be overwritten
    await page.wait_for_selector("#settings-form[data-ready]")
    assert await page.input_value("#settings-form select[name=language]") == ""
    await page.select_option("#settings-form select[name=language]", "ru")
    await page.uncheck("#settings-form input[name=monthly_email]")
    async with page.expect_navigation():
        await page.click("#settings-form button[type=submit]")
    assert await page.get_attribute("html", "lang") == "ru"
    assert await _api(portal, page, "/me/preferences") == {"language": "ru", "monthly_email": False}
    await page.context.close()
    fresh = await _login(browser, portal, DEMO_OPERATOR)  # a new context: no cookie
    await fresh.wait_for_url("**/ops")
    assert await fresh.get_attribute("html", "lang") == "ru"
    token = await fresh.evaluate("sessionStorage.getItem('balans.token')")
    # leave the operator as found
    async with httpx.AsyncClient(base_url=portal, timeout=HTTP_TIMEOUT_S) as http:
        reset = await http.put(
            "/api/v1/me/preferences",
            headers={"Authorization": f"Bearer {token}"},
            json={"language": None, "monthly_email": True},
        )
    assert reset.status_code == 200
    await fresh.context.close()


@pytest.mark.parametrize(("locale", "title"), [("ro", "Factura nr."), ("ru", "Счёт №")])
async def test_invoice_opens_prints_and_downloads(
    portal: str, browser: Any, locale: str, title: str
) -> None:
    """From the consumer page the resident opens an invoice (billing's document, in the
    page's language, no English left), and downloads its PDF, whose text reads back."""
    context, page, errors = await _resident(browser, portal, locale)
    await page.fill("input[name=username]", DEMO_CONSUMER[0])
    await page.fill("input[name=password]", DEMO_CONSUMER[1])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/my")
    await page.click("#invoices a >> nth=0")
    await page.wait_for_url("**/my/invoices/*")
    await page.wait_for_function(
        "() => document.getElementById('invoice').shadowRoot?.querySelector('h1')"
    )
    assert (await page.text_content("h1")).startswith(title)
    texts = await page.evaluate(VISIBLE_TEXT)
    assert _untranslated(texts, locale) == []
    assert _untranslated(texts, locale, BILLING) == []
    await page.screenshot(path=str(SHOTS / f"invoice-{locale}.png"), full_page=True)
    async with page.expect_download() as download:
        await page.click("#invoice-pdf")
    pdf = await asyncio.to_thread(Path(await (await download.value).path()).read_bytes)
    text = " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages).split())
    number = (await page.text_content("h1")).rsplit(" ", 1)[1]
    assert f"{title} {number}" in text
    first = pdfium.PdfDocument(pdf)[0].render(scale=1.5).to_pil()
    first.save(SHOTS / f"invoice-pdf-{locale}.png")
    assert errors == []
    await context.close()


async def test_operator_pages_in_russian(portal: str, browser: Any) -> None:
    """The operator's map, building and alert queue in Russian: no English message of the
    catalogs left, no console error."""
    context, page, errors = await _resident(browser, portal, "ru")
    await page.fill("input[name=username]", DEMO_OPERATOR[0])
    await page.fill("input[name=password]", DEMO_OPERATOR[1])
    await page.click("button[type=submit]")
    await page.wait_for_url("**/ops")
    await _map(page)
    await page.wait_for_selector("#buildings a")
    assert _untranslated(await page.evaluate(VISIBLE_TEXT), "ru") == []
    await page.click("#buildings a >> nth=0")
    await page.wait_for_url("**/ops/buildings/*")
    await _trace(page, "chart-overview", 1)
    await page.wait_for_selector("#mesh li")
    await page.wait_for_selector("#valves tr")
    assert _untranslated(await page.evaluate(VISIBLE_TEXT), "ru") == []
    await page.goto(portal + "/ops/alerts")
    await page.wait_for_selector("#alert-queue tr[data-alert]")
    assert _untranslated(await page.evaluate(VISIBLE_TEXT), "ru") == []
    assert errors == []
    await context.close()
