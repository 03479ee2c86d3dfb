"""Answer with a model serialised by pydantic-core in one pass.

FastAPI's default path validates the returned model against ``response_model`` again and
builds a Python dict before encoding it; for series of hundreds of points that was most
of a request's time. Endpoints keep ``response_model`` for the OpenAPI schema."""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel


def json_response(model: BaseModel) -> Response:
    return raw_json(model.model_dump_json().encode())


def dict_response(body: dict[str, Any]) -> Response:
    """Plain data (e.g. points built as JSON by PostgreSQL) encoded by the C json encoder."""
    return raw_json(json.dumps(body, default=str, separators=(",", ":")).encode())


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")
