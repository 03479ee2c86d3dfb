"""Answers with PostgreSQL's points spliced in are the JSON the data says, whatever the
other values hold (a text spelled like a placeholder included)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from balans_api.fastjson import dict_response
from balans_db.queries.allocation import Points

POINTS = '[{"t":"2026-12-03T23:00:00Z","value":1.25,"estimated":false,"partial":true}]'


def test_points_are_spliced_where_they_stand() -> None:
    body = {
        "flat": {"number": '12 "a"\\b \x01points\x01', "at": datetime(2026, 12, 3, 23, tzinfo=UTC)},
        "heat": {"points": Points(POINTS, 1.25)},
        "meters": [{"points": Points("[]", 0.0)}, {"points": Points(POINTS, 1.25)}],
        "day": date(2026, 12, 4),
    }
    answer = json.loads(dict_response(body).body)
    assert answer == {
        "flat": {"number": '12 "a"\\b \x01points\x01', "at": "2026-12-03T23:00:00Z"},
        "heat": {"points": json.loads(POINTS)},
        "meters": [{"points": []}, {"points": json.loads(POINTS)}],
        "day": "2026-12-04",
    }
