"""Local calendar periods (months, days) of a site as UTC time ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from balans_api.errors import ApiError
from balans_api.timerange import TimeRange


def parse_month(text: str) -> date:
    try:
        month = datetime.strptime(text, "%Y-%m").date()
    except ValueError as exc:
        raise ApiError(400, "month must be YYYY-MM") from exc
    if not FIRST_DAY <= month <= LAST_DAY:
        # a statement reaches a year back and a month ahead: keep every such month in range
        raise ApiError(400, f"month {text} is out of range: months lie between 1970-02 and 9000-01")
    return month


def add_months(month: date, n: int) -> date:
    index = month.year * 12 + month.month - 1 + n
    if not 1 <= index // 12 <= 9000:
        raise ApiError(400, "month out of range")
    return date(index // 12, index % 12 + 1, 1)


# the days a request may name (as timerange's instants); beyond them the UTC conversion
# or the next day's date would overflow
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9000, 1, 1)


def local_midnight(day: date, tz: str) -> datetime:
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ApiError(400, f"{day} is out of range: dates lie between {FIRST_DAY} and {LAST_DAY}")
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


def month_range(month: date, tz: str) -> TimeRange:
    return TimeRange(local_midnight(month, tz), local_midnight(add_months(month, 1), tz))


def day_range(day: date, tz: str) -> TimeRange:
    return TimeRange(local_midnight(day, tz), local_midnight(day + timedelta(days=1), tz))


def this_month(tz: str) -> date:
    today = datetime.now(ZoneInfo(tz)).date()
    return today.replace(day=1)
