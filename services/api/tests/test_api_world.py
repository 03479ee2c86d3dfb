"""World model, readings and views through the REST API against the real stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from balans_db.queries.allocation import HEAT_DECIMALS

from .conftest import World, auth, points

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_buildings_paginate_with_cursor(client: httpx.AsyncClient, world: World) -> None:
    """Two pages of two buildings cover the first four buildings without repeats."""
    h = auth(world, "operator")
    first = (await client.get("/api/v1/buildings?limit=2", headers=h)).json()
    second = (
        await client.get(f"/api/v1/buildings?limit=2&cursor={first['next_cursor']}", headers=h)
    ).json()
    ids = [b["id"] for b in first["items"] + second["items"]]
    assert len(set(ids)) == 4
    assert ids == sorted(ids)


async def test_consumer_sees_only_own_flat(client: httpx.AsyncClient, world: World) -> None:
    """A consumer's flat list holds exactly their flat; another flat is a 404."""
    h = auth(world, "consumer")
    flats = (await client.get("/api/v1/flats?limit=1000", headers=h)).json()
    assert [f["id"] for f in flats["items"]] == [world.flat_id]
    assert (await client.get(f"/api/v1/flats/{world.other_flat_id}", headers=h)).status_code == 404


async def test_consumption_csv_matches_json(client: httpx.AsyncClient, world: World) -> None:
    """The CSV export carries the same daily values as the JSON series."""
    h = auth(world, "consumer")
    url = f"/api/v1/meters/{world.meter_id}/consumption?resolution=day"
    series = points((await client.get(url, headers=h)).json())
    csv = (await client.get(url + "&format=csv", headers=h)).text.strip().splitlines()
    assert len(csv) == len(series) + 1
    assert [row.split(",")[0] for row in csv[1:]] == [p["t"] for p in series]
    assert float(csv[1].split(",")[1]) == pytest.approx(series[0]["value"])


async def test_profile_has_average_and_forecast(client: httpx.AsyncClient, world: World) -> None:
    """The month profile has the average flat's line and a forecast at least month-to-date."""
    h = auth(world, "consumer")
    p = (await client.get(f"/api/v1/flats/{world.flat_id}/profile", headers=h)).json()
    assert points(p["heat"])
    assert points(p["building_average"])
    assert p["forecast_kwh"] >= p["month_to_date_kwh"] > 0
    # the ratio is of the unrounded totals; the points shown are rounded to the meters'
    # resolution, so their sum may miss the average's total by half a unit a point
    values = [x["value"] for x in points(p["building_average"])]
    slack = (len(values) + 1) * 0.5 * 10.0 ** -int(HEAT_DECIMALS)
    mine = p["month_to_date_kwh"]
    assert mine / (sum(values) + slack) <= p["coefficients"]["consumption"]
    assert p["coefficients"]["consumption"] <= mine / (sum(values) - slack)


async def test_errors_have_one_shape(client: httpx.AsyncClient, world: World) -> None:
    """A 404, a 422 and a 401 all answer {"error": {"code", "message"}}."""
    h = auth(world, "operator")
    answers = [
        await client.get("/api/v1/buildings/999999", headers=h),
        await client.get("/api/v1/buildings?limit=0", headers=h),
        await client.get("/api/v1/buildings"),
    ]
    assert [a.status_code for a in answers] == [404, 422, 401]
    assert [a.json()["error"]["code"] for a in answers] == [
        "not_found",
        "invalid_request",
        "unauthorized",
    ]


async def test_profile_meters_match_meter_series(client: httpx.AsyncClient, world: World) -> None:
    """Each meter's hourly series in the profile equals the meter's own consumption series
    over the same month."""
    h = auth(world, "consumer")
    p = (
        await client.get(f"/api/v1/flats/{world.flat_id}/profile?resolution=hour", headers=h)
    ).json()
    first = p["meters"][0]
    hours = points(first)
    own = (
        await client.get(
            f"/api/v1/meters/{first['meter_id']}/consumption",
            params={"from": hours[0]["t"], "to": hours[-1]["t"], "resolution": "hour"},
            headers=h,
        )
    ).json()
    assert len(p["meters"]) > 1
    assert own["start"] == first["start"]
    assert own["values"] == pytest.approx(first["values"][:-1])


async def test_average_flat_is_the_mean_of_flats(client: httpx.AsyncClient, world: World) -> None:
    """The average-flat line (from allocation's building hours) equals the mean of the
    building's flat totals in that hour."""
    import asyncpg

    h = auth(world, "consumer")
    p = (
        await client.get(f"/api/v1/flats/{world.flat_id}/profile?resolution=hour", headers=h)
    ).json()
    point = points(p["building_average"])[5]
    conn = await asyncpg.connect(world.database_url)
    try:
        mean = await conn.fetchval(
            "select avg(total_kwh) from heat_allocation where building_id = $1 and hour = $2",
            world.building_id,
            datetime.fromisoformat(point["t"]),
        )
    finally:
        await conn.close()
    assert point["value"] == pytest.approx(mean, abs=0.0005)  # heat is given to the Wh


async def test_day_series_from_the_days_equals_its_hours(
    client: httpx.AsyncClient, world: World
) -> None:
    """Between local midnights (date bounds) a flat's days and months come from allocation's
    days; they equal its hourly series summed per local day and month (each hour rounded
    to the Wh, hence the tolerance)."""
    h = auth(world, "consumer")
    url = f"/api/v1/flats/{world.flat_id}/heat/series"
    conn = await asyncpg.connect(world.database_url)
    try:
        tz = await conn.fetchval(
            "select s.timezone from sites s join buildings b on b.site_id = s.id where b.id = $1",
            world.building_id,
        )
    finally:
        await conn.close()
    today = datetime.now(ZoneInfo(tz)).date()
    first, last = (today - timedelta(days=40)).isoformat(), (today - timedelta(days=2)).isoformat()
    for resolution in ("day", "month"):
        rolled = points(
            (
                await client.get(
                    url, params={"from": first, "to": last, "resolution": resolution}, headers=h
                )
            ).json()
        )
        hours = points(
            (
                await client.get(
                    url,
                    params={"from": first, "to": last, "resolution": "hour"},
                    headers=h,
                )
            ).json()
        )
        sums: dict[str, float] = {}
        for p in hours:
            local = datetime.fromisoformat(p["t"]).astimezone(ZoneInfo(tz)).date()
            key = local if resolution == "day" else local.replace(day=1)
            start = datetime(key.year, key.month, key.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)
            stamp = start.isoformat().replace("+00:00", "Z")
            sums[stamp] = sums.get(stamp, 0.0) + p["value"]
        assert [p["t"] for p in rolled] == list(sums)
        assert [p["value"] for p in rolled] == pytest.approx(
            list(sums.values()), rel=1e-4, abs=0.02
        )
        assert len(rolled) == (38 if resolution == "day" else len({k[:7] for k in sums}))
