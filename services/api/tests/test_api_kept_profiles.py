"""Kept answers of closed months: the very bytes the live path answers (a consumer's own
flat before the app's routing, staff's through the route), served only over a whole closed
month, and never stored by a build that an invalidation overtook."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from balans_api import kept_profiles, principal_cache, profile_keeper
from balans_api.calendar import add_months, month_range, this_month
from balans_api.db import open_pool
from balans_api.keeper import Keeper
from balans_api.settings import ApiSettings
from balans_api.timerange import iso_z
from balans_protocol.messages import ReadingsStored

from .conftest import World, auth


def _count(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("balans_api_kept_profiles_total", labels) or 0.0


@pytest.fixture(scope="module")
async def pool(world: World) -> AsyncIterator[asyncpg.Pool]:
    pool = await open_pool(world.database_url, 2)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
async def zone(pool: asyncpg.Pool, world: World) -> str:
    """The world's time zone; balance's forecast of the month running written for a meter
    of each of its two buildings, as balance's analysis would (a month is kept once
    balance has moved past it)."""
    tz = await pool.fetchval(
        "select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1",
        world.building_id,
    )
    await pool.execute(
        """insert into forecasts (scope, scope_id, month, unit, consumed_to_date,
               forecast_total, hdd_to_date, hdd_month, as_of)
           select 'meter', id, $1, unit, 0, 0, 0, 0, now() from meters where id = any($2)""",
        this_month(tz),
        [world.meter_id, world.other_meter_id],
    )
    return tz


def _path(flat_id: int, month: date, resolution: str) -> str:
    return f"/api/v1/flats/{flat_id}/profile?month={month:%Y-%m}&resolution={resolution}"


async def test_kept_answers_are_the_live_answers(
    client: httpx.AsyncClient, world: World, pool: asyncpg.Pool, zone: str
) -> None:
    month = add_months(this_month(zone), -1)  # closed, and inside the world's 60 days
    asked = [
        (flat, role, resolution)
        for flat, role in ((world.flat_id, "consumer"), (world.flat_id, "operator"))
        for resolution in ("hour", "day")
    ]
    live = {}
    for flat, role, resolution in asked:
        answer = await client.get(_path(flat, month, resolution), headers=auth(world, role))
        assert answer.status_code == 200, answer.text
        live[flat, role, resolution] = answer.content
    assert any(v is not None for v in json.loads(live[asked[0]])["heat"]["values"])
    pairs = [(world.building_id, month)]
    assert await profile_keeper.keepable(pool, pairs) == pairs
    assert await profile_keeper.keepable(pool, [(world.building_id, this_month(zone))]) == []
    built = await profile_keeper.build(pool, pairs)
    assert (built.months, built.discarded, built.failed) == (1, 0, 0)
    hits = _count("hit")
    for flat, role, resolution in asked:
        answer = await client.get(_path(flat, month, resolution), headers=auth(world, role))
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.content == live[flat, role, resolution], (flat, role, resolution)
    assert _count("hit") - hits == len(asked)  # every one of them answered from its kept row


async def test_a_tenant_of_part_of_the_month_gets_their_part(
    client: httpx.AsyncClient, world: World, pool: asyncpg.Pool, zone: str
) -> None:
    """The kept answer covers the whole month; a consumer whose account holds the flat
    from the 11th on sees their days, computed."""
    month = add_months(this_month(zone), -1)
    if await kept_profiles.lookup(pool, world.flat_id, month, "day") is None:
        await profile_keeper.build_month(pool, world.building_id, month)
    kept = await kept_profiles.lookup(pool, world.flat_id, month, "day")
    assert kept is not None
    opened = month.replace(day=11)
    await pool.execute("update accounts set opened_on = $2 where id = $1", world.account_id, opened)
    principal_cache.forget_all()
    try:
        looked_up = _count("hit") + _count("miss")
        answer = await client.get(
            _path(world.flat_id, month, "day"), headers=auth(world, "consumer")
        )
        assert answer.status_code == 200
        assert answer.content != kept
        assert answer.json()["heat"]["start"] == iso_z(month_range(opened, zone).start)
        assert _count("hit") + _count("miss") == looked_up  # not even looked up
    finally:
        await pool.execute("update accounts set opened_on = null where id = $1", world.account_id)
        principal_cache.forget_all()


async def test_a_build_overtaken_by_an_invalidation_stores_nothing(
    client: httpx.AsyncClient, world: World, pool: asyncpg.Pool, zone: str
) -> None:
    month = add_months(this_month(zone), -1)
    building = world.other_building_id
    generation = await kept_profiles.begin(pool, building, month)
    row = (world.other_flat_id, month, "day", building, b'{"stale":true}')
    assert await kept_profiles.invalidate(pool, building, [month]) >= 0
    assert not await kept_profiles.store(pool, building, month, generation, [row])
    assert await kept_profiles.lookup(pool, world.other_flat_id, month, "day") is None
    assert (building, month) not in await kept_profiles.built_months(pool, [month])
    # the month is computed meanwhile, and a build that began after the invalidation keeps
    answer = await client.get(
        _path(world.other_flat_id, month, "day"), headers=auth(world, "operator")
    )
    assert answer.status_code == 200
    assert answer.json()["flat"]["flat_id"] == world.other_flat_id
    assert await profile_keeper.build_month(pool, building, month) is not None
    assert await kept_profiles.lookup(pool, world.other_flat_id, month, "day") == answer.content


async def test_a_month_late_data_invalidated_is_built_once_it_has_settled(
    world: World, pool: asyncpg.Pool, zone: str
) -> None:
    """A backfill arrives in many batches, each invalidating the same months: the month is
    built again only once no announcement has touched it for the settle time (the
    periodic scan leaves it too), then at once."""
    month = add_months(this_month(zone), -1)
    now = [1000.0]
    settings = ApiSettings(database_url=world.database_url, api_keep_settle_s=30, api_keep_months=1)
    keeper = Keeper(pool, settings, clock=lambda: now[0])
    first = month_range(month, zone).start + timedelta(days=3)
    batch = ReadingsStored(
        building_id=world.building_id, hour_from=first, hour_to=first + timedelta(hours=5), rows=9
    )
    pair = (world.building_id, month)

    async def kept() -> bool:
        return pair in await kept_profiles.built_months(pool, [month])

    await keeper.on_hours(batch)
    assert not await kept()
    await keeper.build_pass(scan=True)
    assert not await kept()  # settling: neither the pass nor the scan builds it
    now[0] += 20
    await keeper.on_hours(batch)  # the next batch: the month settles from now
    now[0] += 20
    await keeper.build_pass(scan=True)
    assert not await kept()
    now[0] += 11
    await keeper.build_pass(scan=False)
    assert await kept()


async def test_a_reading_stamped_at_a_months_first_midnight_invalidates_the_month_before(
    world: World, pool: asyncpg.Pool, zone: str
) -> None:
    """A register read at 00:00 on the 1st closes the last hour of the month before (its
    ``ts`` is the end of the hour it belongs to): that month's kept answers go."""
    month = add_months(this_month(zone), -1)
    if await kept_profiles.lookup(pool, world.flat_id, month, "day") is None:
        await profile_keeper.build_month(pool, world.building_id, month)
    assert (world.building_id, month) in await kept_profiles.built_months(pool, [month])
    settings = ApiSettings(database_url=world.database_url, api_keep_months=1)
    midnight = month_range(add_months(month, 1), zone).start
    batch = ReadingsStored(
        building_id=world.building_id, hour_from=midnight, hour_to=midnight, rows=1
    )
    await Keeper(pool, settings).on_hours(batch)
    assert (world.building_id, month) not in await kept_profiles.built_months(pool, [month])
    assert await kept_profiles.lookup(pool, world.flat_id, month, "day") is None
