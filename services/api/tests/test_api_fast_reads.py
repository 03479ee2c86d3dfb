"""Fast reads: a month profile costs at most two queries beyond the caller's
authentication (once the building's figures are cached), and answers what the hours say
(its days from allocation's day rollups, compared with sums of the hours)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.app import create_app
from balans_api.settings import ApiSettings

from .conftest import PASSWORD, ROLES, World, points


class CountingPool:
    """The app's pool, counting the statements the routes send through it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name == "acquire":  # a route on its own connection would escape the count
            raise AssertionError("acquire is not counted")
        return getattr(self.pool, name)

    def _counted(name: str):  # noqa: N805 - a method factory
        async def method(self: CountingPool, sql: str, *args: Any, **kwargs: Any) -> Any:
            self.statements.append(sql)
            return await getattr(self.pool, name)(sql, *args, **kwargs)

        return method

    fetch = _counted("fetch")
    fetchrow = _counted("fetchrow")
    fetchval = _counted("fetchval")
    execute = _counted("execute")


@pytest.fixture(scope="module")
async def counted(world: World) -> AsyncIterator[tuple[httpx.AsyncClient, CountingPool]]:
    settings = ApiSettings(
        database_url=world.database_url, login_rate="1000/minute", api_auth_cache_ttl_s=60
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api"
        ) as http:
            for role in ROLES:
                response = await http.post(
                    "/api/v1/auth/token", data={"username": role, "password": PASSWORD}
                )
                world.tokens[role] = response.json()["access_token"]
            pool = CountingPool(app.state.pool)  # logins use a connection of their own
            app.state.pool = pool
            yield http, pool
        app.state.pool = pool.pool


def _consumer(world: World) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens['consumer']}"}


async def _statements(http: httpx.AsyncClient, pool: CountingPool, url: str, h: dict) -> int:
    before = len(pool.statements)
    response = await http.get(url, headers=h)
    assert response.status_code == 200, response.text
    return len(pool.statements) - before


@pytest.mark.parametrize("resolution", ["hour", "day"])
async def test_month_profile_in_two_queries(counted, world: World, resolution: str) -> None:
    http, pool = counted
    h = _consumer(world)
    url = f"/api/v1/flats/{world.flat_id}/profile?resolution={resolution}"
    # the building's figures cached and the caller's principal kept from here on
    assert await _statements(http, pool, url, h) > 2  # the count sees the route's statements
    assert await _statements(http, pool, "/api/v1/auth/me", h) == 0
    # a consumer's own flat (building, time zone) came with the principal: the month's
    # figures are the one query
    assert await _statements(http, pool, url, h) == 1
    # staff read the flat first, then the month
    staff = {"Authorization": f"Bearer {world.tokens['operator']}"}
    await _statements(http, pool, url, staff)  # the operator's principal kept
    assert await _statements(http, pool, url, staff) == 2


async def test_own_flat_kept_with_the_principal_is_the_flat(counted, world: World) -> None:
    """The consumer's flat as the principal carries it equals what staff read from the
    database, in the answer of every flat view."""
    http, _ = counted
    staff = {"Authorization": f"Bearer {world.tokens['operator']}"}
    for view in ("profile", "history"):
        url = f"/api/v1/flats/{world.flat_id}/{view}"
        mine = (await http.get(url, headers=_consumer(world))).json()["flat"]
        read = (await http.get(url, headers=staff)).json()["flat"]
        assert mine == read
        assert mine["flat_id"] == world.flat_id
        assert mine["timezone"]


async def _local_days(conn: asyncpg.Connection, sql: str, key: int, tz: str, start, end):
    """(local day start in UTC, sum, hours, estimated) of a table's hours in [start, end)."""
    return await conn.fetch(
        f"""select (date_trunc('day', hour, $2)) as t, sum(v) as value, count(*) as hours,
                   bool_or(estimated) as estimated,
                   extract(epoch from ((date_trunc('day', hour, $2) at time zone $2)
                           + interval '1 day') at time zone $2 - date_trunc('day', hour, $2))
                   / 3600 as length
            from ({sql}) x where hour >= $3 and hour < $4 group by 1 order by 1""",
        key,
        tz,
        start,
        end,
    )


def _expected(rows, decimals: int) -> list[tuple]:
    return [
        (
            r["t"],
            pytest.approx(round(r["value"], decimals), abs=10**-decimals),
            r["estimated"],
            r["hours"] < r["length"],
        )
        for r in rows
    ]


def _answered(series: dict) -> list[tuple]:
    return [
        (datetime.fromisoformat(p["t"]), p["value"], p["estimated"], p["partial"])
        for p in points(series)
    ]


async def test_profile_days_are_the_sums_of_the_hours(counted, world: World) -> None:
    """The day profile (read from the day rollups) equals the hours summed per local day,
    for the heat and for every meter, partial days flagged; the month to date too."""
    http, _ = counted
    p = (
        await http.get(
            f"/api/v1/flats/{world.flat_id}/profile?resolution=day", headers=_consumer(world)
        )
    ).json()
    tz = p["flat"]["timezone"]
    conn = await asyncpg.connect(world.database_url)
    try:
        first, last = points(p["heat"])[0]["t"], points(p["heat"])[-1]["t"]
        start = datetime.fromisoformat(first)
        end = await conn.fetchval(
            "select ((($1::timestamptz at time zone $2) + interval '1 day') at time zone $2)",
            datetime.fromisoformat(last),
            tz,
        )
        heat = await _local_days(
            conn,
            "select hour, total_kwh as v, estimated from heat_allocation where flat_id = $1",
            world.flat_id,
            tz,
            start,
            end,
        )
        assert len(heat) >= 1
        assert _answered(p["heat"]) == _expected(heat, 3)
        assert p["month_to_date_kwh"] == pytest.approx(sum(r["value"] for r in heat))
        assert len(p["meters"]) > 1
        for meter in p["meters"]:
            decimals = await conn.fetchval(
                "select scale(trim_scale(pulse_weight)) from meters where id = $1",
                meter["meter_id"],
            )
            hours = await _local_days(
                conn,
                "select hour, value as v, estimated from meter_consumption where meter_id = $1",
                meter["meter_id"],
                tz,
                start,
                end,
            )
            assert _answered(meter) == _expected(hours, decimals)
    finally:
        await conn.close()


async def test_building_overview_in_one_query(counted, world: World) -> None:
    """Computed (not from the cache), the overview is one query beyond authentication, and
    its daily building heat (before balance's first analysis: the building meter's) is its
    hours summed per local day."""
    http, pool = counted
    h = {"Authorization": f"Bearer {world.tokens['operator']}"}
    authentication = await _statements(http, pool, "/api/v1/auth/me", h)
    url = f"/api/v1/buildings/{world.other_building_id}/overview"
    assert await _statements(http, pool, url, h) - authentication <= 1
    overview = (await http.get(url, headers=h)).json()
    conn = await asyncpg.connect(world.database_url)
    try:
        days = await conn.fetch(
            """select date_trunc('day', c.hour, s.timezone) as t, sum(c.value) as value
               from meter_consumption c join meters m on m.id = c.meter_id
               join buildings b on b.id = m.building_id join sites s on s.id = b.site_id
               where m.building_id = $1 and m.role = 'building' and m.utility = 'heat'
                 and c.hour >= date_trunc('hour', now()) - interval '30 days'
               group by 1 order by 1""",
            world.other_building_id,
        )
    finally:
        await conn.close()
    assert len(days) >= 30
    answered = points(overview["building_heat_last_30d"])
    assert [datetime.fromisoformat(p["t"]) for p in answered] == [r["t"] for r in days]
    # the api answers to 3 decimals: a day of 360.0845 kWh is 360.084 (more than approx's
    # default 1e-6 relative on a small first day of the window)
    expected = [r["value"] for r in days]
    assert [p["value"] for p in answered] == pytest.approx(expected, abs=5.01e-4)
    assert overview["flats"] > 0
    assert overview["open_alerts"] == 0
