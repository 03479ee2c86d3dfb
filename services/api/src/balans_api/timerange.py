"""Time-range query parameters and CSV export of series."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import Response

from balans_api.errors import ApiError

MAX_RANGE = timedelta(days=800)
Resolution = Literal["hour", "day", "month"]
Format = Literal["json", "csv"]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime


def time_range(
    start: Annotated[
        datetime | None,
        Query(alias="from", description="Start (inclusive, ISO 8601; default: 30 days ago)."),
    ] = None,
    end: Annotated[
        datetime | None,
        Query(alias="to", description="End (exclusive, ISO 8601; default: now)."),
    ] = None,
) -> TimeRange:
    """Parse ``from``/``to``; naive times are taken as UTC."""
    end_utc = _utc(end) if end else datetime.now(UTC)
    start_utc = _utc(start) if start else end_utc - timedelta(days=30)
    if start_utc >= end_utc:
        raise ApiError(400, "'from' must be before 'to'")
    if end_utc - start_utc > MAX_RANGE:
        raise ApiError(400, f"a range is at most {MAX_RANGE.days} days")
    return TimeRange(start_utc, end_utc)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not datetime(1970, 1, 2, tzinfo=UTC) <= value <= datetime(9000, 1, 1, tzinfo=UTC):
        raise ApiError(400, "time out of range")
    return value.astimezone(UTC)


def csv_response(header: Sequence[str], rows: Iterable[Sequence[object]], name: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([v.isoformat() if isinstance(v, datetime) else v for v in row])
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
