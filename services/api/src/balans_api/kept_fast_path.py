"""The kept answer of a consumer's own flat, served before FastAPI's routing.

``GET /api/v1/flats/{id}/profile?month=YYYY-MM[&resolution=hour|day]`` of a closed month
asked by the consumer whose flat it is: the principal as every route gets it
(``deps.principal_of``), the kept answer as the route finds it
(``kept_profiles.answer``), its bytes sent as they are. Matching a path against the
app's routes and solving a route's dependencies cost more of the api's CPU than the
lookup and the answer together (a kept answer is one primary-key read). Anything else,
including every request that would get an error, a miss, or staff's requests, goes on to
the route, which answers it as always (kept or computed): this path only answers what the
route would answer, in fewer steps."""

from __future__ import annotations

import re
from types import SimpleNamespace
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from balans_api import kept_profiles
from balans_api.calendar import parse_month
from balans_api.deps import allowed, principal_of
from balans_api.errors import ApiError

_ROUTE = SimpleNamespace(path="/api/v1/flats/{flat_id}/profile")
_PATH = re.compile(r"/api/v1/flats/([0-9]{1,9})/profile")
_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_HEADERS = [(b"content-type", b"application/json")]


class KeptProfilesFirst:
    """ASGI middleware: answers a consumer's kept profile, passes on everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            matched = _PATH.fullmatch(scope["path"])
            body = await self._kept(scope, int(matched[1])) if matched else None
            if body is not None:
                scope["route"] = _ROUTE  # what the request metrics name it by
                headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _kept(self, scope: Scope, flat_id: int) -> bytes | None:
        state = scope["app"].state
        if state.settings.api_keep_months <= 0:
            return None
        query = parse_qs(scope["query_string"].decode("latin-1"))
        if set(query) - {"month", "resolution"} or any(len(v) != 1 for v in query.values()):
            return None
        month, resolution = query.get("month", [""])[0], query.get("resolution", ["day"])[0]
        if not _MONTH.fullmatch(month) or resolution not in kept_profiles.RESOLUTIONS:
            return None
        token = _bearer(scope)
        if token is None or token.startswith("bk_"):  # an integrator's key: no own flat
            return None
        who = await principal_of(state, state.pool, token)
        if who is None or not allowed(who, "read", consumers=True):
            return None
        flat = who.own_flat
        if flat is None or flat.flat_id != flat_id:
            return None
        try:
            first = parse_month(month)
        except ApiError:
            return None
        scope[kept_profiles.ASKED] = True  # the route need not ask again
        return await kept_profiles.answer(state.pool, who, flat, first, resolution)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None
