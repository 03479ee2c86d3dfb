"""Security headers on real answers of the served app: portal pages, static files, the
documentation pages, API successes and errors."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from balans_api.app import create_app
from balans_api.server import serving
from balans_api.settings import ApiSettings
from balans_core.health import bind_socket
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S

from .conftest import PASSWORD, World

pytestmark = pytest.mark.asyncio(loop_scope="session")

PATHS = [
    ("GET", "/login", 200),
    ("GET", "/my", 200),
    ("GET", "/ops", 200),
    ("GET", "/ops/alerts", 200),
    ("GET", "/ops/buildings/1", 200),
    ("GET", "/static/portal.js", 200),
    ("GET", "/vendor/plotly.js", 200),
    ("GET", "/api/v1/docs", 200),
    ("GET", "/api/v1/redoc", 200),
    ("GET", "/vendor/api-docs/swagger-ui-bundle.js", 200),
    ("GET", "/api/v1/openapi.json", 200),
    ("GET", "/api/v1/sites", 200),
    ("GET", "/api/v1/auth/me", 401),
    ("GET", "/api/v1/no-such-thing", 404),
    ("GET", "/api/v1/flats/x", 422),
    ("POST", "/api/v1/auth/token", 422),
]


@pytest.fixture(scope="module")
async def api(world: World) -> AsyncIterator[httpx.AsyncClient]:
    sock = bind_socket("127.0.0.1", 0)
    async with serving(create_app(ApiSettings(database_url=world.database_url)), sock):
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        async with httpx.AsyncClient(base_url=base, timeout=HTTP_TIMEOUT_S) as http:
            token = await http.post(
                "/api/v1/auth/token", data={"username": "operator", "password": PASSWORD}
            )
            http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            yield http


@pytest.mark.parametrize(("method", "path", "status"), PATHS)
async def test_every_answer_carries_the_security_headers(
    api: httpx.AsyncClient, method: str, path: str, status: int
) -> None:
    anonymous = {"Authorization": ""} if status == 401 else None
    response = await api.request(method, path, headers=anonymous)
    assert response.status_code == status, response.text[:200]
    csp = {
        d.split(" ", 1)[0]: d.split(" ", 1)[1:]
        for d in response.headers["content-security-policy"].split("; ")
    }
    assert csp["script-src"] == ["'self'"]  # no inline script, no eval, no CDN
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["object-src"] == ["'none'"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


async def test_portal_pages_have_no_inline_script(api: httpx.AsyncClient) -> None:
    """What the policy forbids, the pages do not need: every script has a ``src`` and no
    element has an event-handler attribute."""
    for path in ("/login", "/my", "/ops", "/ops/alerts", "/ops/buildings/1", "/api/v1/docs"):
        html = (await api.get(path)).text
        assert html.count("<script") == html.count("<script src="), path
        assert re.search(r"\son[a-z]+=", html) is None, path
