"""The ``from``/``to`` query parameters of series and time-keyed lists, and their CSV export.

A bound is a date (``2026-12-03``: local midnight of the site, so days are whole) or a
date-time (ISO 8601; with an offset or ``Z``, or naive = UTC). Which site's midnight a date
means is known only once the route has found its resource, so the dependency keeps the
bounds as given and :meth:`Span.resolve` turns them into UTC instants."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import Query
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from balans_api.errors import ApiError

MAX_RANGE = timedelta(days=800)
DEFAULT_RANGE = timedelta(days=30)
Resolution = Literal["hour", "day", "month"]
Format = Literal["json", "csv"]

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = TypeAdapter(datetime)
_EARLIEST = datetime(1970, 1, 2, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_BOUND_SCHEMA = {"anyOf": [{"type": "string", "format": "date"}, {"format": "date-time"}]}


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in UTC."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Span:
    """``from``/``to`` as given (a date, a date-time, or None for the default)."""

    start: date | datetime | None
    end: date | datetime | None

    def resolve(self, tz: str) -> TimeRange:
        """UTC instants: dates are midnight in ``tz``; default the last 30 days to now."""
        zone = ZoneInfo(tz)
        end = _instant(self.end, zone) if self.end is not None else datetime.now(UTC)
        start = _instant(self.start, zone) if self.start is not None else end - DEFAULT_RANGE
        if start >= end:
            raise ApiError(400, "'from' must be before 'to'")
        if end - start > MAX_RANGE:
            raise ApiError(400, f"a range is at most {MAX_RANGE.days} days")
        return TimeRange(start, end)


def _instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(), zone)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not _EARLIEST <= value <= _LATEST:
        raise ApiError(400, "time out of range")
    return value.astimezone(UTC)


def _bound(value: str | None, name: str) -> date | datetime | None:
    if value is None:
        return None
    try:
        if _DATE_ONLY.match(value):
            return date.fromisoformat(value)
        return _DATETIME.validate_python(value)
    except (ValueError, ValidationError) as exc:
        raise ApiError(
            400, f"'{name}' must be a date (YYYY-MM-DD) or an ISO 8601 date-time"
        ) from exc


async def span(  # async: FastAPI would run a plain function in a worker thread
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="Start, inclusive: a date (local midnight of the site) or an ISO 8601 "
            "date-time (naive = UTC). Default: 30 days before `to`.",
            json_schema_extra=_BOUND_SCHEMA,
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="End, exclusive: a date (local midnight of the site) or an ISO 8601 "
            "date-time (naive = UTC). Default: now.",
            json_schema_extra=_BOUND_SCHEMA,
        ),
    ] = None,
) -> Span:
    """Parse ``from``/``to`` (resolved later with :meth:`Span.resolve`)."""
    return Span(_bound(start, "from"), _bound(end, "to"))


def iso_z(value: datetime) -> str:
    """ISO 8601 in UTC with ``Z`` (the one time format of the API)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def csv_cell(value: object) -> object:
    """A CSV cell: times as ISO 8601 UTC with ``Z``, booleans ``true``/``false``."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def csv_response(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    name: str,
    next_cursor: str | None = None,
) -> Response:
    """A CSV download; for a page of a list, ``X-Next-Cursor`` carries the next cursor."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(v) for v in row])
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    if next_cursor is not None:
        headers["X-Next-Cursor"] = next_cursor
    return Response(buffer.getvalue(), media_type="text/csv", headers=headers)
