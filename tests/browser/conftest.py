"""Shared by the browser tests: one Chromium for the session (each tab a browser context of
its own), a page that records its console errors, signing in through the login form, and
the api on a free port."""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from balans_api.app import create_app
from balans_api.server import serving
from balans_api.settings import ApiSettings
from balans_api.users import DEMO_OPERATOR, ensure_demo_users
from balans_core.health import bind_socket
from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import demo_city
from balans_i18n.catalogs import COOKIE

CHROMIUM = "/usr/bin/chromium"
# billing's serve_documents or serve_tariffs
BillingEndpoint = Callable[[Client, asyncpg.Pool, str], Awaitable[Subscription]]
OUTSIDE = re.compile(r"^https?://(?!127\.0\.0\.1[:/])")


@pytest.fixture(scope="session")
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


@asynccontextmanager
async def api_at(database_url: str, nats: Client | None = None) -> AsyncIterator[str]:
    """The api over ``database_url`` on a free port (with the NATS client ``nats`` when
    given): its address."""
    sock = bind_socket("127.0.0.1", 0)
    async with serving(create_app(ApiSettings(database_url=database_url), nats=nats), sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def api_with_billing(
    database_url: str, nats_url: str, billing: BillingEndpoint
) -> AsyncIterator[str]:
    """:func:`api_at` with one of billing's request endpoints (``serve_documents``,
    ``serve_tariffs``) answering the api over NATS at ``nats_url``."""
    nc = await connect_nats(nats_url, "test-portal")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await billing(nc, pool, "billing")
        async with api_at(database_url, nc) as base:
            yield base
    finally:
        await nc.close()
        await pool.close()


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
    async with api_at(database_url) as base:
        yield base, building_id


@pytest.fixture(scope="module")
async def operator_1a(chromium: Any, portal_1a: tuple[str, int]) -> AsyncIterator[Tab]:
    """The demo operator signed in to ``portal_1a``."""
    base, _ = portal_1a
    tab = await open_tab(chromium, base)
    await sign_in(tab, base, DEMO_OPERATOR)
    await tab.page.wait_for_url("**/ops")
    yield tab
    await tab.close()
