"""``/meters/verification-due``: meters whose verification (calibration) expires soon.

A meter's verification is due ``interval`` years after it was last verified
(``verified_on``, or ``installed_on`` for a meter never re-verified); the interval is the
meter's own (``verification_interval_years``) or its utility's default
(``BALANS_VERIFICATION_INTERVAL_YEARS``, sources in docs/provisioning.md).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from balans_api.deps import Pool, Settings, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.paging import Cursor, Limit, Page, decode_key, encode_cursor
from balans_db.queries import world

router = APIRouter(tags=["verification"], responses=ERROR_RESPONSES)


class VerificationDue(BaseModel):
    id: int
    serial: str
    utility: str
    building_id: int
    building: str
    flat: str | None
    verified_on: date
    interval_years: int
    due_on: date
    expired: bool


@router.get("/meters/verification-due", response_model=Page[VerificationDue])
async def verification_due(
    pool: Pool,
    who: Staff,
    settings: Settings,
    days: Annotated[int, Query(ge=0, le=3650, description="due within this many days")] = 90,
    building: Annotated[str | None, Query(description="only this building (code)")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Any:
    """Meters due for verification within ``days`` (already expired ones first), soonest
    first (then by meter id)."""
    building_id = None
    if building is not None:
        building_id = await pool.fetchval("select id from buildings where code = $1", building)
        if building_id is None:
            raise not_found(f"building {building!r}")
    today = datetime.now(UTC).date()
    rows = await world.verification_due(
        pool, today + timedelta(days=days), settings.verification_intervals(), building_id
    )
    if cursor is not None:
        due, meter = decode_key(cursor, 2)
        if not meter.isdigit():
            raise ApiError(400, "malformed cursor")
        rows = [r for r in rows if (r["due_on"].isoformat(), r["id"]) > (due, int(meter))]
    page = rows[:limit]
    nxt = (
        encode_cursor(page[-1]["due_on"].isoformat(), page[-1]["id"]) if len(rows) > limit else None
    )
    return Page[VerificationDue](
        items=[VerificationDue(**r, expired=r["due_on"] <= today) for r in page], next_cursor=nxt
    )
