"""Property-based requests generated from the OpenAPI schema (schemathesis): no request,
however odd, to whichever operation, gets a 5xx.

Every operation runs schemathesis' explicit examples, its coverage phase (boundary and
just-out-of-range values of each parameter: empty maps, the last representable date...)
and a few random cases, against the app served by uvicorn over a real database."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from balans_api.app import create_app
from balans_api.server import http_server
from balans_api.settings import ApiSettings
from balans_core.health import bind_socket
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S

from .conftest import PASSWORD, World

# bounded: a few random cases per operation on top of the deterministic coverage cases
MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def api_url(world: World) -> Iterator[str]:
    """The app served by uvicorn in a thread with its own event loop (schemathesis calls
    are synchronous)."""
    app = create_app(ApiSettings(database_url=world.database_url, login_rate="100000/minute"))
    sock = bind_socket("127.0.0.1", 0)
    server = http_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(30)


def _headers(api_url: str, role: str) -> dict[str, str]:
    token = httpx.post(
        api_url + "/api/v1/auth/token",
        data={"username": role, "password": PASSWORD},
        timeout=HTTP_TIMEOUT_S,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def admin_headers(api_url: str) -> dict[str, str]:
    return _headers(api_url, "admin")


@pytest.fixture(scope="module", params=["consumer", "admin"])
def role_headers(api_url: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """A consumer's queries take the own-flat paths; the admin reaches every operation
    (last: its random cases may deactivate users, the consumer among them)."""
    return _headers(api_url, request.param)


# the schema is static: built from the app without a server, so pytest can parametrize
# one test per operation at collection time
schema = (
    schemathesis.openapi.from_dict(
        create_app(ApiSettings(database_url="postgresql://unused")).openapi()
    )
    .exclude(
        # forwarded to balance over NATS, which this app has not: a 503 by design here; their
        # odd inputs run against the real balance in tests/test_alert_actions_api.py
        path_regex=r"^/api/v1/alerts/\{alert_id\}/(acknowledge|resolve|dismiss)$"
    )
    .exclude(
        # rendered by billing over NATS, likewise: tests/test_invoice_document_api.py
        path_regex=r"^/api/v1/invoices/\{invoice_id\}/document$"
    )
    # stored by billing over NATS, likewise: services/api/tests/test_api_tariffs.py
    .exclude(method="POST", path="/api/v1/tariffs")
)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_server_errors(
    case: schemathesis.Case, api_url: str, role_headers: dict[str, str]
) -> None:
    """Whatever the generated request, the answer is not a 5xx."""
    response = case.call(base_url=api_url, headers=role_headers, timeout=HTTP_TIMEOUT_S)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} {case.query} {case.body!r}: {response.text[:300]}"
    )


def test_estimator_without_a_flat_size_is_a_clear_422(
    api_url: str, admin_headers: dict[str, str]
) -> None:
    """An empty per-rooms consumption map was a 500; now the estimator's reason is told."""
    response = httpx.post(
        api_url + "/api/v1/estimator",
        json={"heating": {"gcal_per_month": {}}},
        headers=admin_headers,
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 422, response.text
    assert "no consumption known for 1-room flats" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/flats/{flat}/readings", {"date": "9999-12-31"}),
        ("/flats/{flat}/readings", {"date": "0001-01-01"}),
        ("/flats/{flat}/profile", {"month": "0001-01"}),
        ("/flats/{flat}/statement", {"month": "9999-12"}),
    ],
)
def test_dates_at_the_ends_of_the_calendar_are_refused_on_a_live_connection(
    api_url: str, admin_headers: dict[str, str], world: World, path: str, params: dict[str, str]
) -> None:
    """The last representable date overflowed into a 500 and a reset connection; now it is
    a 400 saying it is out of range, and the same connection serves the next request."""
    with httpx.Client(
        base_url=api_url + "/api/v1", headers=admin_headers, timeout=HTTP_TIMEOUT_S
    ) as http:
        response = http.get(path.format(flat=world.flat_id), params=params)
        assert response.status_code == 400, response.text
        assert "range" in response.json()["error"]["message"]
        assert http.get("/auth/me").status_code == 200
