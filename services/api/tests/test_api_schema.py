"""Property-based requests generated from the OpenAPI schema (schemathesis): no request,
however odd, gets a 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings

from balans_api.app import create_app
from balans_api.settings import ApiSettings
from balans_core.health import bind_socket

from .conftest import PASSWORD, World


@pytest.fixture(scope="module")
def api_url(world: World) -> Iterator[str]:
    """The app served by uvicorn in a thread with its own event loop (schemathesis calls
    are synchronous)."""
    app = create_app(ApiSettings(database_url=world.database_url, login_rate="100000/minute"))
    sock = bind_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def admin_headers(api_url: str) -> dict[str, str]:
    token = httpx.post(
        api_url + "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_no_server_errors(api_url: str, admin_headers: dict[str, str]) -> None:
    """Whatever the generated request, to whichever operation, the answer is not a 5xx."""
    schema = schemathesis.openapi.from_url(api_url + "/api/v1/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=5,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=admin_headers)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")

        check()
    assert operations > 30
    assert failures == []
