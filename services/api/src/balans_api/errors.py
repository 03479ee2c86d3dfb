"""One JSON shape for every error: ``{"error": {"code", "message", "details"}}``.

``code`` is stable and machine-readable (``not_found``, ``forbidden``...); ``message``
is for people, in the reader's language where the api's catalogs have it (the
``balans_lang`` cookie, else ``Accept-Language``; see :data:`TRANSLATED`), else English;
``details`` carries validation problems where there are any.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from balans_api.i18n import localizer
from balans_api.metrics import ERRORS
from balans_i18n.catalogs import COOKIE
from balans_i18n.localizer import N_

log = structlog.get_logger("api")

#: Every error code the API answers with, by HTTP status (one code per status). The list
#: in docs/api.md is checked against it, and ``ApiError`` refuses any other code.
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    422: "invalid_request",
    429: "too_many_requests",
    500: "internal",
    502: "bad_gateway",
    503: "unavailable",
}
ERROR_CODES = frozenset(_CODES.values())
_CODE_ENUM: list[JsonValue] = [*sorted(ERROR_CODES)]


TRANSLATED = (
    N_("authentication required"),
    N_("invalid or expired credentials"),
    N_("wrong username or password"),
    N_("the request is not valid"),
    N_("this data is not available yet"),
    N_("internal error; it has been logged"),
    N_("month must be YYYY-MM"),
    N_("Not Found"),
)
"""Messages clients meet most, in the catalogs; any other message is answered in English."""


def _said(request: Request, message: str) -> str:
    """``message`` in the reader's language; English for a client that names none (an
    integrator's script), not the portal's default, Romanian."""
    if COOKIE not in request.cookies and "accept-language" not in request.headers:
        return message
    return localizer(request).gettext(message)


class ErrorBody(BaseModel):
    code: str = Field(json_schema_extra={"enum": _CODE_ENUM})
    message: str
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorBody


class ApiError(Exception):
    """Raise to answer with a given status and error code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        retry_after: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES[status]
        if self.code not in ERROR_CODES:
            raise ValueError(f"undocumented error code {self.code!r}")
        self.message = message
        self.retry_after = retry_after
        self.details = details


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    retry_after: int | None = None,
) -> JSONResponse:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=details))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": code.replace("_", " ")}
    for status, code in _CODES.items()
    if status in (400, 401, 403, 404, 422)
}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status,
            exc.code,
            _said(request, exc.message),
            exc.details,
            retry_after=exc.retry_after,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "bad_request" if exc.status_code < 500 else "internal")
        return error_response(exc.status_code, code, _said(request, str(exc.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(
            422, "invalid_request", _said(request, "the request is not valid"), details
        )

    @app.exception_handler(asyncpg.UndefinedTableError)
    async def _missing_table(request: Request, exc: asyncpg.UndefinedTableError) -> JSONResponse:
        # a service whose migration has not landed yet owns this table
        log.warning("table missing", path=request.url.path, error=str(exc))
        return error_response(503, "unavailable", _said(request, "this data is not available yet"))

    @app.exception_handler(asyncpg.DataError)
    async def _out_of_range(request: Request, exc: asyncpg.DataError) -> JSONResponse:
        # a parameter PostgreSQL cannot hold (an id beyond int4, a date beyond its range)
        return error_response(422, "invalid_request", f"a parameter is out of range: {exc}")


def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a bug: logged with its traceback and counted. The app's middleware
    calls it, so the error never reaches the server (which would drop the connection)."""
    route = getattr(request.scope.get("route"), "path", "unmatched")
    ERRORS.labels(route=route).inc()
    log.error("unhandled error", route=route, method=request.method, exc_info=exc)
    return error_response(500, "internal", _said(request, "internal error; it has been logged"))
