"""Answer with a model serialised by pydantic-core in one pass.

FastAPI's default path validates the returned model against ``response_model`` again and
builds a Python dict before encoding it; for series of hundreds of points that was most
of a request's time. Endpoints keep ``response_model`` for the OpenAPI schema."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi.responses import Response
from pydantic import BaseModel

from balans_api.timerange import iso_z


@dataclass(frozen=True)
class RawJson:
    """JSON text to splice into an answer as it is (a series' values as PostgreSQL wrote
    them)."""

    text: str


def json_response(model: BaseModel) -> Response:
    return raw_json(model.model_dump_json().encode())


def dict_response(body: dict[str, Any]) -> Response:
    return raw_json(dict_bytes(body))


def dict_bytes(body: dict[str, Any]) -> bytes:
    """Plain data encoded by the C json encoder; :class:`RawJson` inside it is spliced in
    as it is (decoding and re-encoding thousands of values cost more than the rest of a
    profile request), in one join. Times are ISO 8601 UTC with ``Z``."""
    raw: list[str] = []
    mark = f"\x01{secrets.token_hex(8)}\x01"  # no text of the data can guess it

    def placeholder(value: object) -> object:
        if isinstance(value, RawJson):
            raw.append(value.text)
            return mark
        if isinstance(value, datetime):
            return iso_z(value)
        return str(value)

    around = json.dumps(body, default=placeholder, separators=(",", ":")).split(json.dumps(mark))
    pieces = [around[0]]
    for points, after in zip(raw, around[1:], strict=True):
        pieces += (points, after)
    return "".join(pieces).encode()


def raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")
