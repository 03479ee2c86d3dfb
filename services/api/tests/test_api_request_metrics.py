"""Every request is timed and counted by route template and status class, and a bug is
answered with the documented 500 (security headers included) instead of a dropped
connection."""

from __future__ import annotations

import httpx
from prometheus_client import REGISTRY

from balans_api.app import create_app
from balans_api.settings import ApiSettings


def _count(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_bug_is_a_counted_500_and_answers_are_counted() -> None:
    app = create_app(ApiSettings())

    @app.get("/api/v1/test-bug")
    async def bug() -> None:
        raise RuntimeError("a bug")

    route = "/api/v1/test-bug"
    errors = _count("balans_api_errors_total", route=route)
    failed = _count("balans_api_requests_total", route=route, method="GET", status="5xx")
    missing = _count("balans_api_requests_total", route="unmatched", method="GET", status="4xx")
    timed = _count("balans_api_request_seconds_count", route=route)
    # no lifespan: neither route touches the database
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as http:
        answer = await http.get(route)
        assert answer.status_code == 500
        assert answer.json()["error"]["code"] == "internal"
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/api/v1/no-such-thing")).status_code == 404
    assert _count("balans_api_errors_total", route=route) == errors + 1
    assert (
        _count("balans_api_requests_total", route=route, method="GET", status="5xx") == failed + 1
    )
    assert _count("balans_api_request_seconds_count", route=route) == timed + 1
    assert (
        _count("balans_api_requests_total", route="unmatched", method="GET", status="4xx")
        == missing + 1
    )
