"""``POST /imports/readings``: historical register readings from CSV (``serial,time,register``),
e.g. read by hand before the modules were installed. They go through the concentrators'
idempotent path (docs/provisioning.md, "Historical readings"): importing the same file
again stores nothing new. A malformed file is a 422 listing each problem with its row,
and nothing is written."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from balans_api import audit
from balans_api.deps import Operator, Pool
from balans_api.errors import ERROR_RESPONSES
from balans_api.provisioning import refused, wake_relay
from balans_api.register_readings import announce_readings
from balans_db.provisioning.readings import parse_csv, store_readings
from balans_db.provisioning.validation import InvalidDocumentError

router = APIRouter(tags=["imports"], responses=ERROR_RESPONSES)

EXAMPLE = "serial,time,register\nheat-100001-0,2026-01-01T00:00:00+02:00,1234.567\n"


class ReadingsImported(BaseModel):
    received: int
    inserted: int


@router.post(
    "/imports/readings",
    response_model=ReadingsImported,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}, "example": EXAMPLE}},
        }
    },
)
async def import_readings(request: Request, pool: Pool, who: Operator) -> ReadingsImported:
    """Store register readings from a CSV body in one transaction (all or nothing)."""
    text = (await request.body()).decode("utf-8-sig", errors="replace")
    try:
        readings = parse_csv(text)
        async with pool.acquire() as conn, conn.transaction():
            report = await store_readings(conn, readings)
            await announce_readings(conn, report)
            await audit.record(
                conn,
                who.actor,
                "import.readings",
                "readings",
                received=report.received,
                inserted=report.inserted,
            )
    except InvalidDocumentError as exc:
        raise refused(exc, "readings") from exc
    wake_relay(request.app)
    return ReadingsImported(received=report.received, inserted=report.inserted)
