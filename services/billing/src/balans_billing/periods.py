"""Billing periods are whole calendar months in the building's local time."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo


class PeriodError(ValueError):
    """A billing period that is not a run of whole local months."""


def whole_months(start: datetime, end: datetime, timezone: str) -> int:
    """Number of calendar months in [start, end), which must begin and end at local
    midnight on the first of a month."""
    if start.tzinfo is None or end.tzinfo is None:
        raise PeriodError("period bounds must be timezone-aware")
    zone = ZoneInfo(timezone)
    local_start, local_end = start.astimezone(zone), end.astimezone(zone)
    for bound in (local_start, local_end):
        if bound.day != 1 or bound.time() != time(0):
            raise PeriodError(f"{bound.isoformat()} is not the start of a month in {timezone}")
    months = (local_end.year - local_start.year) * 12 + local_end.month - local_start.month
    if months < 1:
        raise PeriodError("a billing period spans at least one month")
    return months


def require_ended(end: datetime, now: datetime) -> None:
    """Refuse a period that has not ended at ``now``: its figures are not final, and an
    invoice once issued is never changed (only corrected)."""
    if end > now:
        raise PeriodError(f"the period ending {end.isoformat()} has not ended yet")


def first_day(start: datetime, timezone: str) -> date:
    """The local date a period starts on (the day its tariff must be in force)."""
    return start.astimezone(ZoneInfo(timezone)).date()


def month_bounds(year: int, month: int, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a local calendar month as aware datetimes."""
    zone = ZoneInfo(timezone)
    nxt = (year + month // 12, month % 12 + 1)
    return datetime(year, month, 1, tzinfo=zone), datetime(*nxt, 1, tzinfo=zone)
