"""The API documentation pages in Chromium with every address but 127.0.0.1 blocked: Swagger
UI and ReDoc load from the api itself, list the endpoints and break no
Content-Security-Policy rule."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from balans_api.app import create_app
from balans_api.server import serving
from balans_api.settings import ApiSettings
from balans_core.health import bind_socket

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# ReDoc's attribution logo is its one outside address; the policy blocks it and ReDoc then
# hides the image (its onError), so nothing the page needs is missing
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
async def api(database_url: str) -> AsyncIterator[str]:
    sock = bind_socket("127.0.0.1", 0)
    async with serving(create_app(ApiSettings(database_url=database_url)), sock):
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="module")
async def offline_page() -> AsyncIterator[tuple[Any, list[str]]]:
    """A Chromium page that may reach only 127.0.0.1; the list collects what it blocked and
    the console's errors (a Content-Security-Policy violation is one)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} missing: run scripts/os-packages.sh (as root)")
    from playwright.async_api import async_playwright

    blocked: list[str] = []

    async def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            await route.continue_()
        else:
            blocked.append(route.request.url)
            await route.abort("internetdisconnected")

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
        )
        context = await chromium.new_context()
        await context.route("**/*", only_loopback)
        page = await context.new_page()

        def console_error(message: Any) -> None:
            if message.type == "error":
                blocked.append(message.text)

        page.on("console", console_error)
        yield page, blocked
        await chromium.close()


async def test_swagger_ui_lists_the_endpoints_offline(
    api: str, offline_page: tuple[Any, list[str]]
) -> None:
    page, blocked = offline_page
    await page.goto(api + "/api/v1/docs")
    operation = page.locator(".opblock-summary-path", has_text="/api/v1/auth/token")
    await operation.first.wait_for(timeout=30_000)
    assert await page.locator(".opblock").count() > 30
    assert blocked == []


async def test_redoc_lists_the_endpoints_offline(
    api: str, offline_page: tuple[Any, list[str]]
) -> None:
    page, blocked = offline_page
    response = await page.goto(api + "/api/v1/redoc")
    assert response.status == 200
    await page.get_by_text("/api/v1/auth/token").first.wait_for(state="attached", timeout=30_000)
    assert await page.locator("[data-section-id^='tag/']").count() > 5
    assert [b for b in blocked if REDOC_LOGO not in b] == []
