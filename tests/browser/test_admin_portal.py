"""The admin pages and the new-building page in Chromium: each role lands on its own start
page, a page a role may not see sends it home with a translated message, and every admin
page shows what the API holds and changes it through the API (users, API keys, tariff
versions, the audit log, a building from a form or an import file after its dry run).

Screenshots go to a temporary folder; ``BALANS_SCREENSHOT_DIR=docs/img`` refreshes the ones
the docs show."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.i18n import CATALOGS
from balans_api.routes.provisioning import EXAMPLE_BUILDING
from balans_api.users import DEMO_ADMIN, DEMO_CONSUMER, DEMO_OPERATOR, ensure_demo_users
from balans_billing.demo import DEMO_TARIFFS_FROM, seed_demo_tariffs
from balans_billing.tariff_requests import serve_tariffs
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import demo_city
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S
from balans_i18n.localizer import Localizer

from .conftest import Tab, api_with_billing, open_tab, sign_in

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(
    os.environ.get("BALANS_SCREENSHOT_DIR", Path(tempfile.gettempdir()) / "balans-screenshots")
)
SHOTS.mkdir(parents=True, exist_ok=True)
SITE = {
    "code": "example-site",
    "name": "Example",
    "address": "str. Exemplu 1",
    "latitude": 47.0,
    "longitude": 28.8,
}


@pytest.fixture(scope="module")
async def portal(database_url: str, nats_url: str) -> AsyncIterator[str]:
    """The api on a free port over two small buildings of the demo city (no readings: the
    admin pages need none), demo logins and tariffs, and billing answering for new tariff
    versions."""
    await seed(database_url, KeyVault.from_hex(None), demo_city()[1:3])
    conn = await asyncpg.connect(database_url)
    try:
        await ensure_demo_users(conn)
        await seed_demo_tariffs(conn, DEMO_TARIFFS_FROM)
    finally:
        await conn.close()
    async with api_with_billing(database_url, nats_url, serve_tariffs) as base:
        yield base


@pytest.fixture(scope="module")
async def admin_tab(chromium: Any, portal: str) -> AsyncIterator[Tab]:
    """The demo admin, signed in once for the module."""
    tab = await open_tab(chromium, portal)
    await sign_in(tab, portal, DEMO_ADMIN)
    await tab.page.wait_for_url("**/admin")
    yield tab
    await tab.close()


@pytest.fixture
async def admin(admin_tab: Tab) -> AsyncIterator[Tab]:
    """The admin's tab for one test: no console error by its end (but for the statuses the
    test provokes on purpose)."""
    admin_tab.errors.clear()
    admin_tab.expected_statuses.clear()
    yield admin_tab
    assert admin_tab.errors == []


async def _api(portal: str, tab: Tab, method: str, path: str, **kwargs: Any) -> httpx.Response:
    token = await tab.page.evaluate("sessionStorage.getItem('balans.token')")
    async with httpx.AsyncClient(base_url=portal + "/api/v1", timeout=HTTP_TIMEOUT_S) as http:
        return await http.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )


async def _get(portal: str, tab: Tab, path: str) -> Any:
    response = await _api(portal, tab, "GET", path)
    assert response.status_code == 200, response.text
    return response.json()


async def _column(tab: Tab, table: str, index: int) -> list[str]:
    """The text of one column of a table's data rows (the first row is the header)."""
    return await tab.page.eval_on_selector_all(  # type: ignore[no-any-return]
        f"#{table} tr:not(:first-child)",
        "(rows, i) => rows.map((r) => r.cells[i].textContent.trim())",
        index,
    )


@pytest.mark.parametrize(
    ("who", "home", "refused"),
    [
        (DEMO_ADMIN, "/admin", ["/my"]),
        (DEMO_CONSUMER, "/my", ["/ops/buildings/1", "/admin/users"]),
        (DEMO_OPERATOR, "/ops", ["/admin/tariffs"]),
    ],
)
async def test_each_role_lands_home_and_is_sent_back_from_pages_it_may_not_see(
    chromium: Any, portal: str, who: tuple[str, str], home: str, refused: list[str]
) -> None:
    """In Romanian: each role signs in to its own start page (only the admin's menu has
    the administration); a page it may not see sends it home with the catalog's message
    naming the page, and that page's script never runs (no request to /flats/undefined,
    no JavaScript error)."""
    tab = await open_tab(chromium, portal, "ro")
    await sign_in(tab, portal, who)
    await tab.page.wait_for_url(f"**{home}")
    await tab.page.wait_for_selector("#nav a")
    nav = await tab.page.eval_on_selector_all("#nav a", "(a) => a.map((x) => x.pathname)")
    assert ("/admin" in nav) == (home == "/admin")
    message = Localizer("ro", CATALOGS).gettext(
        "Your role may not open {page}: this is your start page."
    )
    assert not message.startswith("Your role")
    for page in refused:
        await tab.page.goto(portal + page)
        await tab.page.wait_for_url(f"**{home}?denied=*")
        await tab.page.wait_for_selector("#flash:not([hidden])")
        assert await tab.page.text_content("#flash") == message.format(page=page)
    assert tab.errors == []
    await tab.close()


async def test_users_created_given_a_role_and_deactivated(portal: str, admin: Tab) -> None:
    page = admin.page
    await page.goto(portal + "/admin/users")
    await page.wait_for_selector("#users tr[data-user]")
    listed = await _get(portal, admin, "/users?limit=1000")
    assert await _column(admin, "users", 0) == [u["username"] for u in listed["items"]]
    # a weak password: the API's reason is shown, nothing is created
    admin.expected_statuses.add(422)
    await page.fill("#user-form [name=username]", "dispatcher")
    await page.fill("#user-form [name=password]", "password")
    await page.click("#user-form button[type=submit]")
    await page.wait_for_selector("#user-errors li")
    assert "12 characters" in await page.text_content("#user-errors")
    await page.fill("#user-form [name=full_name]", "Ion Dispecer")
    await page.fill("#user-form [name=password]", "a-long-and-unlisted-passphrase")
    await page.click("#user-form button[type=submit]")
    row = page.locator("#users tr[data-username=dispatcher]")
    await row.wait_for()
    await row.locator("select[data-role]").select_option("manager")
    await page.wait_for_function(
        "() => document.getElementById('users-status').textContent.startsWith('dispatcher')"
    )
    await row.locator("button[data-act=deactivate]").click()
    await page.wait_for_selector("#users tr[data-username=dispatcher] button[data-act=activate]")
    users = {u["username"]: u for u in (await _get(portal, admin, "/users?limit=1000"))["items"]}
    assert users["dispatcher"]["role"] == "manager"
    assert users["dispatcher"]["full_name"] == "Ion Dispecer"
    assert users["dispatcher"]["active"] is False
    await page.screenshot(path=str(SHOTS / "admin-users.png"), full_page=True)


async def test_api_key_shown_once_and_revoked(portal: str, admin: Tab) -> None:
    page = admin.page
    await page.goto(portal + "/admin/api-keys")
    await page.wait_for_selector("#keys tr")
    await page.fill("#key-form [name=name]", "billing-export")
    await page.click("#key-form button[type=submit]")
    await page.wait_for_selector("#new-key:not([hidden])")
    token = await page.text_content("#new-key-token")
    async with httpx.AsyncClient(base_url=portal + "/api/v1", timeout=HTTP_TIMEOUT_S) as http:
        me = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        keys = (await _get(portal, admin, "/api-keys?limit=1000"))["items"]
        assert await _column(admin, "keys", 1) == [k["prefix"] for k in keys]
        assert token not in json.dumps(keys)  # the list never shows the secret
        await page.screenshot(path=str(SHOTS / "admin-keys.png"), full_page=True)
        prefix = me.json()["actor"].removeprefix("key:")
        await page.click(f"#keys tr[data-prefix='{prefix}'] button[data-revoke]")
        await page.wait_for_selector(
            f"#keys tr[data-prefix='{prefix}'] td:nth-child(6):not(:empty)"
        )
        refused = await http.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401


async def test_tariff_version_from_a_date_with_its_problems_shown(portal: str, admin: Tab) -> None:
    page = admin.page
    await page.goto(portal + "/admin/tariffs")
    await page.wait_for_selector("#tariffs tr[data-tariff]")
    before = (await _get(portal, admin, "/tariffs?limit=1000"))["items"]
    assert len(await _column(admin, "tariffs", 0)) == len(before)
    await page.select_option("#tariff-series", "heat/default")
    await page.wait_for_function("() => document.getElementById('tariff-spec').value.length > 0")
    spec = json.loads(await page.input_value("#tariff-spec"))
    # two problems at once: a negative price and a gap between blocks, each with its path
    admin.expected_statuses.add(422)
    bad = {**spec, "fixed_per_month": "-1", "blocks": [{"from_qty": "5", "price": "-3"}]}
    await page.fill("#tariff-spec", json.dumps(bad))
    await page.fill("#tariff-from", "2031-01-01")
    await page.click("#tariff-form button[type=submit]")
    await page.wait_for_selector("#tariff-errors li code")
    paths = await page.eval_on_selector_all(
        "#tariff-errors li code", "(c) => c.map((x) => x.textContent)"
    )
    assert {"fixed_per_month", "blocks.0.price"} <= set(paths)
    assert (await _get(portal, admin, "/tariffs?limit=1000"))["items"] == before
    spec["blocks"] = [{"from_qty": "0", "to_qty": None, "price": "1250.00"}]
    await page.fill("#tariff-spec", json.dumps(spec))
    await page.click("#tariff-form button[type=submit]")
    await page.wait_for_function(
        "() => document.getElementById('tariff-status').textContent.length > 0"
    )
    after = (await _get(portal, admin, "/tariffs?limit=1000&utility=heat"))["items"]
    new, old = max(after, key=lambda x: x["version"]), min(after, key=lambda x: x["version"])
    assert (new["effective_from"], new["effective_to"]) == ("2031-01-01", None)
    assert old["effective_to"] == "2031-01-01"
    assert new["spec"]["blocks"][0]["price"] == "1250.00"
    await page.wait_for_selector(f"#tariffs tr[data-tariff='{new['id']}']")
    audit = await _get(portal, admin, "/audit?action=tariff.create")
    assert [a["target"] for a in audit["items"]] == [f"tariff:heat/default/{new['version']}"]
    await page.screenshot(path=str(SHOTS / "admin-tariffs.png"), full_page=True)


async def test_audit_log_filters(portal: str, admin: Tab) -> None:
    page = admin.page
    await _api(portal, admin, "POST", "/api-keys", json={"name": "audited", "scopes": ["read"]})
    await page.goto(portal + "/admin/audit")
    await page.wait_for_selector("#audit tr[data-audit]")
    everything = await _get(portal, admin, "/audit?limit=100")
    assert await _column(admin, "audit", 3) == [a["target"] for a in everything["items"]]
    await page.fill("#audit-filters [name=action]", "api_key.create")
    await page.fill("#audit-filters [name=actor]", "user:admin")
    await page.click("#audit-filters button[type=submit]")
    created = await _get(portal, admin, "/audit?action=api_key.create&actor=user:admin")
    assert created["items"]
    await page.wait_for_function(
        "(n) => document.querySelectorAll('#audit tr[data-audit]').length === n",
        arg=len(created["items"]),
    )
    assert set(await _column(admin, "audit", 2)) == {"api_key.create"}
    await page.screenshot(path=str(SHOTS / "admin-audit.png"), full_page=True)


async def test_building_upload_shows_the_dry_run_then_imports(
    portal: str, admin: Tab, tmp_path: Path
) -> None:
    """An uploaded world document: first the report of what would be created (the API's
    dry run), nothing written; then imported, with the concentrator's key shown once. A
    broken document lists each problem with its path, as the API's 422 does."""
    page = admin.page
    document = {"format": "balans.world/1", "sites": [SITE], "buildings": [EXAMPLE_BUILDING]}
    broken = json.loads(json.dumps(document))
    broken["buildings"][0]["flats"][0]["entrance"] = 9
    broken["buildings"][0]["floors"] = 0
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "building.json").write_text(json.dumps(document))
    refused = await _api(portal, admin, "POST", "/imports?dry_run=true", json=broken)
    assert refused.status_code == 422
    await page.goto(portal + "/ops/provision")
    await page.wait_for_selector("#site option", state="attached")
    admin.expected_statuses.add(422)
    await page.set_input_files("#import-file", str(tmp_path / "broken.json"))
    await page.click("#upload-form button[type=submit]")
    await page.wait_for_selector("#report-errors li")
    shown = await page.eval_on_selector_all(
        "#report-errors li code", "(c) => c.map((x) => x.textContent)"
    )
    assert shown == [p["path"] for p in refused.json()["error"]["details"]]
    assert await page.is_hidden("#import-confirm")

    await page.set_input_files("#import-file", str(tmp_path / "building.json"))
    await page.click("#upload-form button[type=submit]")
    await page.wait_for_selector("#import-confirm:visible")
    counts = await page.eval_on_selector_all(
        "#report tr[data-entity]",
        "(rows) => Object.fromEntries(rows.map((r) =>"
        " [r.dataset.entity, Number(r.cells[1].textContent)]))",
    )
    assert counts["buildings"] == 1
    assert counts["flats"] == len(EXAMPLE_BUILDING["flats"])
    assert counts["meters"] == len(EXAMPLE_BUILDING["meters"])
    assert (await _get(portal, admin, "/exports?building=example-1b"))["buildings"] == []
    await page.screenshot(path=str(SHOTS / "provision-dry-run.png"), full_page=True)
    await page.click("#import-confirm")
    await page.wait_for_selector("#done-buildings a")
    stored = (await _get(portal, admin, "/exports?building=example-1b"))["buildings"]
    assert len(stored[0]["flats"]) == counts["flats"]
    assert len(stored[0]["meters"]) == counts["meters"]
    key = await page.text_content("#done-keys-table code")
    assert len(key) == 64
    audit = await _get(portal, admin, "/audit?actor=user:admin&limit=1000")
    assert any(a["action"].startswith("import") for a in audit["items"]), audit


async def test_building_from_the_form(portal: str, admin: Tab) -> None:
    """The form's building (2 entrances x 3 floors x 2 flats, a heat meter in each) passes
    every check of the dry run and is stored as entered."""
    page = admin.page
    await page.goto(portal + "/ops/provision")
    await page.wait_for_selector("#site option", state="attached")
    form = {
        "code": "form-1a",
        "name": "Entered block",
        "address": "str. Formularului 3",
        "floors": "3",
        "entrances": "2",
        "flats_per_floor": "2",
        "area_m2": "48.5",
        "concentrator": "7700001",
        "first_module": "77000001",
    }
    for name, value in form.items():
        await page.fill(f"#building-form [name={name}]", value)
    await page.click("#building-form button[type=submit]")
    await page.wait_for_selector("#import-confirm:visible")
    await page.click("#import-confirm")
    await page.wait_for_selector("#done-buildings a")
    stored = (await _get(portal, admin, "/exports?building=form-1a"))["buildings"][0]
    assert (stored["name"], stored["layout"], stored["floors"]) == ("Entered block", "1a", 3)
    assert len(stored["flats"]) == 12
    assert {Decimal(f["area_m2"]) for f in stored["flats"]} == {Decimal("48.5")}
    roles = sorted(m["role"] for m in stored["meters"])
    assert roles == ["building"] + ["flat"] * 12
    await page.screenshot(path=str(SHOTS / "provision.png"), full_page=True)


async def test_admin_home_counts_what_the_api_holds(portal: str, admin: Tab) -> None:
    """Last, so the latest changes of the audit log are the other tests'."""
    page = admin.page
    await page.goto(portal + "/admin")
    await page.wait_for_selector("#audit-latest tr")
    users = await _get(portal, admin, "/users?limit=1000")
    keys = await _get(portal, admin, "/api-keys?limit=1000")
    buildings = await _get(portal, admin, "/buildings?limit=1000")
    assert await page.text_content("#count-users") == str(sum(u["active"] for u in users["items"]))
    assert await page.text_content("#count-keys") == str(
        sum(k["revoked_at"] is None for k in keys["items"])
    )
    assert await page.text_content("#count-buildings") == str(len(buildings["items"]))
    today = datetime.now(UTC).date().isoformat()  # the page's today: toISOString's date
    tariffs = (await _get(portal, admin, "/tariffs?limit=1000"))["items"]
    in_force = [
        t
        for t in tariffs
        if t["effective_from"] <= today and (t["effective_to"] is None or today < t["effective_to"])
    ]
    assert await page.text_content("#count-tariffs") == str(len(in_force))
    await page.screenshot(path=str(SHOTS / "admin-home.png"), full_page=True)
