"""Answer with a model serialised by pydantic-core in one pass.

FastAPI's default path validates the returned model against ``response_model`` again and
builds a Python dict before encoding it; for series of hundreds of points that was most
of a request's time. Endpoints keep ``response_model`` for the OpenAPI schema."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from balans_api.timerange import iso_z
from balans_db.queries.allocation import Points


def json_response(model: BaseModel) -> Response:
    return raw_json(model.model_dump_json().encode())


def dict_response(body: dict[str, Any]) -> Response:
    """Plain data encoded by the C json encoder; :class:`series.Points` inside it are
    spliced in as PostgreSQL wrote them (decoding and re-encoding thousands of points
    cost more than the rest of a profile request). Times are ISO 8601 UTC with ``Z``."""
    raw: list[str] = []

    def placeholder(value: object) -> object:
        if isinstance(value, Points):
            raw.append(value.json)
            return f"\x01raw{len(raw) - 1}\x01"
        if isinstance(value, datetime):
            return iso_z(value)
        return str(value)

    text = json.dumps(body, default=placeholder, separators=(",", ":"))
    for i, points in enumerate(raw):
        text = text.replace(f'"\\u0001raw{i}\\u0001"', points, 1)
    return raw_json(text.encode())


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")
