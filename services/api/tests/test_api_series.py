"""The columnar series shape read back bucket by bucket: hours missing inside a series are
null at their place, days and months step through the site's calendar across a change of
summer time, and flagged buckets are named by index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from balans_api.series import bucket_start, buckets
from balans_db.queries.allocation import _to_points, bucket_index

TZ = "Europe/Chisinau"  # summer time ends on 2026-10-25 (UTC+3 -> UTC+2)


def _epochs(*times: datetime) -> str:
    return ",".join(str(int(t.timestamp())) for t in times)


def test_hours_missing_inside_are_null_at_their_place() -> None:
    first = datetime(2026, 11, 1, 0, tzinfo=UTC)
    hours = [first, first + timedelta(hours=1), first + timedelta(hours=4)]
    row = {
        "vals": "[1.5,2,0.25]",
        "first": first,
        "times": _epochs(*hours),  # PostgreSQL sends the times only where hours are missing
        "estimated_t": _epochs(hours[2]),
        "partial_t": None,
        "total": 3.75,
    }
    points = _to_points(row, "hour", TZ)
    assert points.values == "[1.5,2,null,null,0.25]"
    assert (points.start, points.estimated, points.partial) == (first, [4], [])
    body = {"resolution": "hour", "time_zone": TZ, "start": "2026-11-01T00:00:00Z"}
    read = buckets({**body, "values": points.parsed(), "estimated": [4], "partial": []})
    assert [(p["t"], p["value"], p["estimated"]) for p in read] == [
        (hours[0], 1.5, False),
        (hours[1], 2, False),
        (hours[2], 0.25, True),
    ]


def test_days_step_through_the_local_calendar() -> None:
    """Local midnights are 24 hours apart except across the change of time (25 hours)."""
    start = datetime(2026, 10, 23, 21, tzinfo=UTC)  # 24 October, local midnight (UTC+3)
    days = [bucket_start(start, i, "day", TZ) for i in range(4)]
    assert days == [
        datetime(2026, 10, 23, 21, tzinfo=UTC),
        datetime(2026, 10, 24, 21, tzinfo=UTC),
        datetime(2026, 10, 25, 22, tzinfo=UTC),  # 26 October, UTC+2 from the 25th on
        datetime(2026, 10, 26, 22, tzinfo=UTC),
    ]
    assert [bucket_index(start, t, "day", TZ) for t in days] == [0, 1, 2, 3]
    row = {
        "vals": "[10,30]",
        "first": start,
        "times": _epochs(days[0], days[2]),  # the 25th has no data
        "estimated_t": None,
        "partial_t": _epochs(days[2]),
        "total": 40.0,
    }
    points = _to_points(row, "day", TZ)
    assert (points.values, points.partial) == ("[10,null,30]", [2])


def test_months_step_by_calendar_month() -> None:
    start = datetime(2026, 9, 30, 21, tzinfo=UTC)  # 1 October, local midnight
    months = [bucket_start(start, i, "month", TZ) for i in range(4)]
    assert months == [
        datetime(2026, 9, 30, 21, tzinfo=UTC),
        datetime(2026, 10, 31, 22, tzinfo=UTC),
        datetime(2026, 11, 30, 22, tzinfo=UTC),
        datetime(2026, 12, 31, 22, tzinfo=UTC),
    ]
    assert [bucket_index(start, t, "month", TZ) for t in months] == [0, 1, 2, 3]


def test_an_empty_series_has_no_start() -> None:
    row = dict.fromkeys(("vals", "first", "times", "estimated_t", "partial_t", "total"))
    points = _to_points({**row, "vals": "[]"}, "hour", TZ)
    assert (points.start, points.values, points.total) == (None, "[]", 0.0)
