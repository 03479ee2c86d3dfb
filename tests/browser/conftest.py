"""Shared by the browser tests: one Chromium per test module, a page that records its
console errors, and signing in through the login form."""

from __future__ import annotations

import asyncio
import os
import re
import zlib
from collections.abc import AsyncIterator
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
from balans_i18n.catalogs import COOKIE

CHROMIUM = "/usr/bin/chromium"
OUTSIDE = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture(scope="module")
async def chromium() -> AsyncIterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run scripts/os-packages.sh (as root)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        await browser.close()


class Tab:
    """A browser context with one page; ``errors`` collects console errors and uncaught
    exceptions, but for the HTTP statuses a test provokes on purpose (``expect``)."""

    def __init__(self, context: Any, page: Any) -> None:
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.expected_statuses: set[int] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("dialog", lambda dialog: dialog.accept())

    def _console(self, message: Any) -> None:
        if message.type != "error":
            return
        provoked = any(f"status of {s} " in message.text for s in self.expected_statuses)
        if not provoked:
            self.errors.append(message.text)

    async def close(self) -> None:
        await self.context.close()


async def open_tab(chromium: Any, base: str, locale: str = "en") -> Tab:
    context = await chromium.new_context(
        viewport={"width": 1280, "height": 900},
        locale={"ro": "ro-MD", "ru": "ru-RU", "en": "en-GB"}[locale],
    )
    await context.add_cookies([{"name": COOKIE, "value": locale, "url": base}])
    # the test machine has no internet: anything not of the app (map tiles) answers empty
    await context.route(OUTSIDE, lambda route: route.fulfill(status=204))
    return Tab(context, await context.new_page())


async def sign_in(tab: Tab, base: str, who: tuple[str, str]) -> None:
    await tab.page.goto(base + "/login")
    await tab.page.fill("input[name=username]", who[0])
    await tab.page.fill("input[name=password]", who[1])
    await tab.page.click("button[type=submit]")


# the operator's map asks OpenStreetMap for tiles; tests have no network, so each tile is
# served as a plain one (a refused tile would be a console error of the network)
TILES = "https://tile.openstreetmap.org/**"


def plain_tile() -> bytes:
    """A plain light 256x256 PNG."""
    row = b"\x00" + b"\xe8\xee\xf3" * 256

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return len(body).to_bytes(4, "big") + kind + body + crc.to_bytes(4, "big")

    header = (256).to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    idat = zlib.compress(row * 256)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


async def serve_plain_tiles(target: Any) -> None:
    """Answer the map's tile requests of a page or context with :func:`plain_tile`."""
    tile = plain_tile()
    await target.route(TILES, lambda route: route.fulfill(body=tile, content_type="image/png"))


@pytest.fixture(scope="module")
async def portal_1a(database_url: str) -> AsyncIterator[tuple[str, int]]:
    """The api on a free port over demo-1a (no readings), with the demo logins: (its
    address, demo-1a's building id)."""
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
async def operator_1a(chromium: Any, portal_1a: tuple[str, int]) -> AsyncIterator[Tab]:
    """The demo operator signed in to ``portal_1a``."""
    base, _ = portal_1a
    tab = await open_tab(chromium, base)
    await sign_in(tab, base, DEMO_OPERATOR)
    await tab.page.wait_for_url("**/ops")
    yield tab
    await tab.close()
