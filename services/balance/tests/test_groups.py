"""Balance groups generated from layouts and edited through the NATS service API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from balans_balance.group_api import handle_group_request
from balans_balance.groups import generate_building_groups
from balans_balance.service import serve_group_api
from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.topology import demo_city, write_building
from balans_protocol import subjects
from balans_protocol.messages import GroupReply


@pytest.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=1, max_size=2) as p:
        yield p


@pytest.fixture(scope="module")
async def buildings(pool: asyncpg.Pool) -> dict[str, int]:
    """The demo city (layouts 2a, 1a, 1b, 1c, 2b) with generated groups."""
    ids: dict[str, int] = {}
    async with pool.acquire() as conn:
        for spec in demo_city():
            building_id = await write_building(conn, spec, KeyVault(b"k" * 32))
            assert building_id is not None
            ids[spec.layout] = building_id
            await generate_building_groups(conn, building_id)
    return ids


async def test_vertical_layout_tree(pool: asyncpg.Pool, buildings: dict[str, int]) -> None:
    """2a: a heat building group over 34 riser meters, 3 entrance groups, 34 riser groups."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            """select kind, count(*) n from balance_groups
               where building_id = $1 and utility = 'heat' group by kind""",
            buildings["2a"],
        )
        members = await conn.fetchval(
            """select count(*) from balance_group_members m join balance_groups g
               on g.id = m.group_id where g.building_id = $1 and g.kind = 'building'
               and g.utility = 'heat'""",
            buildings["2a"],
        )
        riser_parents = await conn.fetchval(
            """select bool_and(p.kind = 'entrance') from balance_groups g
               join balance_groups p on p.id = g.parent_id
               where g.building_id = $1 and g.kind = 'riser'""",
            buildings["2a"],
        )
    assert dict(rows) == {"building": 1, "entrance": 3, "riser": 34}
    assert members == 34
    assert riser_parents


async def test_every_utility_with_a_building_meter(
    pool: asyncpg.Pool, buildings: dict[str, int]
) -> None:
    """1a gets heat and cold-water building groups; flat heat meters are the heat members."""
    async with pool.acquire() as conn:
        utilities = await conn.fetch(
            """select utility, count(*) filter (where kind = 'riser') risers from balance_groups
               where building_id = $1 and kind in ('building', 'riser') group by utility""",
            buildings["1a"],
        )
        flat_members = await conn.fetchval(
            """select count(*) from balance_group_members m
               join balance_groups g on g.id = m.group_id join meters t on t.id = m.meter_id
               where g.building_id = $1 and g.kind = 'building' and g.utility = 'heat'
               and t.role = 'flat'""",
            buildings["1a"],
        )
    assert {r["utility"]: r["risers"] for r in utilities} == {"heat": 0, "cold_water": 0}
    assert flat_members == 40


async def test_generation_is_idempotent(pool: asyncpg.Pool, buildings: dict[str, int]) -> None:
    """Generating again creates nothing (edits made by operators survive)."""
    async with pool.acquire() as conn:
        assert await generate_building_groups(conn, buildings["1b"]) == []


async def _request(pool: asyncpg.Pool, **request: object) -> GroupReply:
    return await handle_group_request(pool, json.dumps({"request": request}).encode())


async def test_edit_cycle(pool: asyncpg.Pool, buildings: dict[str, int]) -> None:
    """create, rename, add and remove members, delete: each reply shows the result."""
    async with pool.acquire() as conn:
        meters = [
            r["id"]
            for r in await conn.fetch(
                """select id from meters where building_id = $1 and utility = 'heat'
                   and role = 'flat' order by id limit 3""",
                buildings["1a"],
            )
        ]
    created = await _request(
        pool, op="create", name="stairs", utility="heat", member_meter_ids=meters[:1]
    )
    assert created.ok
    gid = created.groups[0].id
    renamed = await _request(pool, op="rename", group_id=gid, name="x")
    assert renamed.groups[0].name == "x"
    added = await _request(pool, op="add_members", group_id=gid, meter_ids=meters[1:])
    assert added.groups[0].member_meter_ids == meters
    removed = await _request(pool, op="remove_members", group_id=gid, meter_ids=meters[:1])
    assert removed.groups[0].member_meter_ids == meters[1:]
    deleted = await _request(pool, op="delete", group_id=gid)
    assert deleted.ok
    gone = await _request(pool, op="get", group_id=gid)
    assert gone.groups == []


async def test_refusals(pool: asyncpg.Pool, buildings: dict[str, int]) -> None:
    """Wrong-utility members, unknown groups and malformed requests are refused, not raised."""
    async with pool.acquire() as conn:
        water = await conn.fetchval(
            "select id from meters where building_id = $1 and utility = 'cold_water' limit 1",
            buildings["1a"],
        )
        heat_group = await conn.fetchval(
            "select id from balance_groups where building_id = $1 and utility = 'heat' limit 1",
            buildings["1a"],
        )
    wrong = await _request(pool, op="add_members", group_id=heat_group, meter_ids=[water])
    assert not wrong.ok
    assert "not heat meters" in wrong.error
    unknown = await _request(pool, op="rename", group_id=999999, name="y")
    assert not unknown.ok
    assert "does not exist" in unknown.error
    malformed = await _request(pool, op="explode")
    assert not malformed.ok
    assert malformed.error.startswith("invalid request")


async def test_served_over_nats(
    nats_url: str, pool: asyncpg.Pool, buildings: dict[str, int]
) -> None:
    """The service answers ``list`` on balans.balance.groups over real NATS."""
    nc = await connect_nats(nats_url, "test-groups")
    try:
        sub = await serve_group_api(nc, pool)
        body = {"request": {"op": "list", "building_id": buildings["2b"], "utility": "heat"}}
        msg = await nc.request(subjects.BALANCE_GROUPS_API, json.dumps(body).encode(), timeout=5)
        reply = GroupReply.model_validate_json(msg.data)
        await sub.unsubscribe()
    finally:
        await nc.drain()
    assert reply.ok
    assert {g.kind for g in reply.groups} == {"building", "entrance", "riser"}
