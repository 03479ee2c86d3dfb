"""The resident's statement, forecast, coefficients and heat explanation are honest: equal
spans compared, missing data null (never 0.0), one forecast with its basis, a reason for
every coefficient that cannot be computed, and the heat split into its parts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

HEAT = """select sum(total_kwh)::float8 as total, sum(measured_kwh)::float8 as measured,
                 sum(common_kwh)::float8 as common, count(*) as hours
          from heat_allocation where flat_id = $1 and hour >= $2 and hour < $3"""


def _month_start(first: date, zone: str) -> datetime:
    return datetime(first.year, first.month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _shift(first: date, months: int) -> date:
    n = first.year * 12 + first.month - 1 + months
    return date(n // 12, n % 12 + 1, 1)


async def _get(client: httpx.AsyncClient, world: World, path: str) -> dict:
    response = await client.get(
        f"/api/v1/flats/{world.flat_id}{path}", headers=auth(world, "consumer")
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_statement_compares_equal_spans(client: httpx.AsyncClient, world: World) -> None:
    """The running month (data up to now) is compared with the same first days of the
    previous month, not with all of it; the same month last year has no data: null."""
    s = await _get(client, world, "/statement")
    flat = await _get(client, world, "/profile")
    zone = flat["flat"]["timezone"]
    first = date.fromisoformat(s["month"] + "-01")
    start = _month_start(first, zone)
    conn = await asyncpg.connect(world.database_url)
    try:
        now_row = await conn.fetchrow(HEAT, world.flat_id, start, start + timedelta(days=40))
        length = timedelta(hours=now_row["hours"])  # the world's data runs up to now
        prev_start = _month_start(_shift(first, -1), zone)
        prev = await conn.fetchrow(HEAT, world.flat_id, prev_start, prev_start + length)
        whole_prev = await conn.fetchrow(HEAT, world.flat_id, prev_start, _month_start(first, zone))
    finally:
        await conn.close()
    assert s["partial"] is True
    assert s["days_compared"] == pytest.approx(now_row["hours"] / 24, abs=0.05)
    assert s["days_compared"] < s["days_in_month"]
    assert s["kwh"] == pytest.approx(now_row["total"])
    assert s["previous_month_kwh"] == pytest.approx(prev["total"])
    assert s["previous_month_kwh"] < whole_prev["total"]  # not the whole month
    assert s["change_vs_previous_pct"] == pytest.approx(
        100 * (s["kwh"] - s["previous_month_kwh"]) / s["previous_month_kwh"]
    )
    assert s["same_month_last_year_kwh"] is None
    assert s["change_vs_last_year_pct"] is None
    assert s["same_month_last_year_days_with_data"] == 0
    assert s["comparable_user_kwh"] > 0


async def test_statement_without_data_is_null(client: httpx.AsyncClient, world: World) -> None:
    """A month without any data answers null everywhere, never 0.0."""
    s = await _get(client, world, "/statement?month=2020-01")
    assert s["kwh"] is None
    assert s["previous_month_kwh"] is None
    assert s["comparable_user_kwh"] is None
    assert s["change_vs_previous_pct"] is None


async def test_profile_forecast_by_degree_days(client: httpx.AsyncClient, world: World) -> None:
    """With balance's degree-days for the building's month, the one forecast scales the
    month so far by them and says so; a month without data has none, and says why."""
    month = datetime.now(UTC).strftime("%Y-%m")
    conn = await asyncpg.connect(world.database_url)
    try:
        meter = await conn.fetchval(
            "select id from meters where building_id = $1 and id <> $2 order by id desc limit 1",
            world.building_id,
            world.meter_id,
        )
        await conn.execute(
            """insert into forecasts (scope, scope_id, month, unit, consumed_to_date,
                   forecast_total, hdd_to_date, hdd_month, as_of)
               values ('meter', $1, $2, 'kWh', 1, 2, 80, 500, now() + interval '1 hour')
               on conflict do nothing""",
            meter,
            date.fromisoformat(month + "-01"),
        )
    finally:
        await conn.close()
    p = await _get(client, world, f"/profile?month={month}")
    assert p["forecast"]["basis"] == "degree_days"
    assert p["forecast"]["hdd_month"] == 500
    assert p["forecast"]["kwh"] == pytest.approx(p["month_to_date_kwh"] * 500 / 80)
    assert p["forecast_kwh"] == p["forecast"]["kwh"]
    empty = await _get(client, world, "/profile?month=2020-01")
    assert empty["month_to_date_kwh"] is None
    assert empty["forecast"] == {
        "kwh": None,
        "basis": "no_data",
        "hdd_to_date": None,
        "hdd_month": None,
        "hours_to_date": 0,
        "hours_in_month": 744,
    }


async def test_every_missing_coefficient_says_why(client: httpx.AsyncClient, world: World) -> None:
    """A coefficient is a number or has a reason; never both, never neither."""
    for month in (datetime.now(UTC).strftime("%Y-%m"), "2020-01"):
        c = (await _get(client, world, f"/profile?month={month}"))["coefficients"]
        for name in ("consumption", "temperature", "efficiency"):
            assert (c[name] is None) == (name in c["why_not"]), (month, name, c)
    c = (await _get(client, world, "/profile?month=2020-01"))["coefficients"]
    assert c["why_not"]["consumption"] == "no_heat_data"


async def test_explain_splits_the_heat(client: httpx.AsyncClient, world: World) -> None:
    """Own metered heat, common share and the methodology, as allocation stored them."""
    x = await _get(client, world, "/explain")
    flat = await _get(client, world, "/profile")
    start = _month_start(date.fromisoformat(x["month"] + "-01"), flat["flat"]["timezone"])
    conn = await asyncpg.connect(world.database_url)
    try:
        row = await conn.fetchrow(HEAT, world.flat_id, start, start + timedelta(days=40))
    finally:
        await conn.close()
    parts = x["parts"]
    assert parts["total_kwh"] == pytest.approx(row["total"])
    assert parts["measured_kwh"] == pytest.approx(row["measured"])
    assert parts["common_kwh"] == pytest.approx(row["common"])
    assert parts["common_share_pct"] == pytest.approx(100 * row["common"] / row["total"])
    assert parts["hours"] == row["hours"]
    assert x["layout"] == "2a"
    assert isinstance(x["methodology"], dict)
    empty = await _get(client, world, "/explain?month=2020-01")
    assert empty["parts"]["total_kwh"] is None
    assert empty["parts"]["common_share_pct"] is None


async def test_explain_one_day(client: httpx.AsyncClient, world: World) -> None:
    """With ``day``, the parts of that local day alone."""
    flat = await _get(client, world, "/profile")
    zone = ZoneInfo(flat["flat"]["timezone"])
    day = (datetime.now(zone) - timedelta(days=2)).date()
    x = await _get(client, world, f"/explain?day={day.isoformat()}")
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    conn = await asyncpg.connect(world.database_url)
    try:
        row = await conn.fetchrow(HEAT, world.flat_id, start, start + timedelta(days=1))
    finally:
        await conn.close()
    assert x["day"] == day.isoformat()
    assert x["parts"]["hours"] == row["hours"] == 24
    assert x["parts"]["total_kwh"] == pytest.approx(row["total"])
    assert x["hours_in_month"] == 24
