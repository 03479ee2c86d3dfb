"""Answers with PostgreSQL's values spliced in are the JSON the data says, whatever the
other values hold (a text spelled like a placeholder included)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from balans_api.fastjson import RawJson, dict_response

VALUES = "[1.25,null,0.003]"


def test_values_are_spliced_where_they_stand() -> None:
    body = {
        "flat": {"number": '12 "a"\\b \x01values\x01', "at": datetime(2026, 12, 3, 23, tzinfo=UTC)},
        "heat": {"values": RawJson(VALUES), "estimated": [1]},
        "meters": [{"values": RawJson("[]")}, {"values": RawJson(VALUES)}],
        "day": date(2026, 12, 4),
    }
    answer = json.loads(dict_response(body).body)
    assert answer == {
        "flat": {"number": '12 "a"\\b \x01values\x01', "at": "2026-12-03T23:00:00Z"},
        "heat": {"values": [1.25, None, 0.003], "estimated": [1]},
        "meters": [{"values": []}, {"values": [1.25, None, 0.003]}],
        "day": "2026-12-04",
    }
