"""Balance groups as data: the default tree generated from a building's layout, and edits.

A group is a set of subscriber meters under an optional balance meter; groups nest
through ``parent_id``. For every utility that has a building meter, a building gets:

- a ``building`` group: the building meter over every flat and riser meter of that utility;
- an ``entrance`` group per entrance (no meter of its own: a comparison group whose
  members are the entrance's meters), child of the building group;
- a ``riser`` group per riser meter (vertical layouts): the riser flow meter is its
  balance meter, child of its entrance group. Its flats are measured by distributors,
  not meters, so it has no members; the clogged-riser detector compares these groups.

Generating is idempotent: a utility whose building group exists is left as the
operator edited it.
"""

from __future__ import annotations

import asyncpg

from balans_db.queries import world
from balans_protocol.messages import BalanceGroupInfo, GroupCreate

_GROUP_COLUMNS = "g.id, g.name, g.utility, g.kind, g.building_id, g.parent_id, g.balance_meter_id"


class GroupError(ValueError):
    """A group edit that cannot be done (unknown group, wrong utility...)."""


async def _insert_group(conn: asyncpg.Connection, g: GroupCreate) -> int:
    group_id: int = await conn.fetchval(
        """insert into balance_groups (name, utility, kind, building_id, parent_id,
                                       balance_meter_id)
           values ($1, $2, $3, $4, $5, $6) returning id""",
        g.name,
        g.utility,
        g.kind,
        g.building_id,
        g.parent_id,
        g.balance_meter_id,
    )
    await conn.executemany(
        "insert into balance_group_members (group_id, meter_id) values ($1, $2)",
        [(group_id, m) for m in g.member_meter_ids],
    )
    return group_id


async def generate_building_groups(conn: asyncpg.Connection, building_id: int) -> list[int]:
    """Create the default group tree of a building; return the ids of new groups."""
    created: list[int] = []
    code = await world.building_code(conn, building_id)
    if code is None:
        raise GroupError(f"building {building_id} does not exist")
    async with conn.transaction():
        building_meters = await world.building_balance_meters(conn, building_id)
        for bm in building_meters:
            utility = bm["utility"]
            exists = await conn.fetchval(
                """select 1 from balance_groups
                   where building_id = $1 and utility = $2 and kind = 'building'""",
                building_id,
                utility,
            )
            if exists:
                continue
            subscribers = await world.subscriber_meters(conn, building_id, utility)
            top = await _insert_group(
                conn,
                GroupCreate(
                    name=f"{code} {utility}",
                    utility=utility,
                    kind="building",
                    building_id=building_id,
                    balance_meter_id=bm["id"],
                    member_meter_ids=[s["id"] for s in subscribers],
                ),
            )
            created.append(top)
            by_entrance: dict[int, list[asyncpg.Record]] = {}
            for s in subscribers:
                if s["entrance_id"] is not None:
                    by_entrance.setdefault(s["entrance_no"], []).append(s)
            for entrance_no, rows in sorted(by_entrance.items()):
                entrance_group = await _insert_group(
                    conn,
                    GroupCreate(
                        name=f"{code} {utility} entrance {entrance_no}",
                        utility=utility,
                        kind="entrance",
                        building_id=building_id,
                        parent_id=top,
                        member_meter_ids=[r["id"] for r in rows],
                    ),
                )
                created.append(entrance_group)
                for r in rows:
                    if r["role"] == "riser":
                        created.append(
                            await _insert_group(
                                conn,
                                GroupCreate(
                                    name=f"{code} {utility} riser {r['riser_no']}",
                                    utility=utility,
                                    kind="riser",
                                    building_id=building_id,
                                    parent_id=entrance_group,
                                    balance_meter_id=r["id"],
                                ),
                            )
                        )
    return created


async def follow_topology(conn: asyncpg.Connection, building_id: int) -> int:
    """Bring a building's default groups in line with its topology after provisioning
    changed it (``TopologyChanged``); return the groups and memberships added.

    Utilities without groups get their tree (:func:`generate_building_groups`). A flat or
    riser meter that is in no group of the building yet joins its utility's building
    group and its entrance's group; a new riser meter also gets its riser group. Removed
    meters have left their groups already (the memberships cascade). Groups and members
    an operator set up are never removed or moved."""
    code = await world.building_code(conn, building_id)
    if code is None:
        raise GroupError(f"building {building_id} does not exist")
    added = len(await generate_building_groups(conn, building_id))
    async with conn.transaction():
        groups = await conn.fetch(
            "select id, name, utility, kind from balance_groups where building_id = $1",
            building_id,
        )
        grouped = {
            r["meter_id"]
            for r in await conn.fetch(
                """select m.meter_id from balance_group_members m
                   join balance_groups g on g.id = m.group_id where g.building_id = $1
                   union select balance_meter_id from balance_groups
                   where building_id = $1 and balance_meter_id is not null""",
                building_id,
            )
        }
        for top in (g for g in groups if g["kind"] == "building"):
            utility = top["utility"]
            entrances = {
                g["name"]: g["id"]
                for g in groups
                if g["kind"] == "entrance" and g["utility"] == utility
            }
            for meter in await world.subscriber_meters(conn, building_id, utility):
                if meter["id"] in grouped:
                    continue
                await add_members(conn, top["id"], [meter["id"]])
                added += 1
                entrance = entrances.get(f"{code} {utility} entrance {meter['entrance_no']}")
                if entrance is None:
                    continue
                if meter["role"] == "riser":
                    await _insert_group(
                        conn,
                        GroupCreate(
                            name=f"{code} {utility} riser {meter['riser_no']}",
                            utility=utility,
                            kind="riser",
                            building_id=building_id,
                            parent_id=entrance,
                            balance_meter_id=meter["id"],
                        ),
                    )
                await add_members(conn, entrance, [meter["id"]])
                added += 1
    return added


async def describe(conn: asyncpg.Connection, group_ids: list[int]) -> list[BalanceGroupInfo]:
    """Groups with their member meters, in id order."""
    rows = await conn.fetch(
        f"""select {_GROUP_COLUMNS},
                   coalesce(array_agg(m.meter_id order by m.meter_id)
                            filter (where m.meter_id is not null), '{{}}') members
            from balance_groups g left join balance_group_members m on m.group_id = g.id
            where g.id = any($1::int[]) group by g.id order by g.id""",
        group_ids,
    )
    return [
        BalanceGroupInfo(
            id=r["id"],
            name=r["name"],
            utility=r["utility"],
            kind=r["kind"],
            building_id=r["building_id"],
            parent_id=r["parent_id"],
            balance_meter_id=r["balance_meter_id"],
            member_meter_ids=list(r["members"]),
        )
        for r in rows
    ]


async def list_group_ids(
    conn: asyncpg.Connection, building_id: int | None = None, utility: str | None = None
) -> list[int]:
    rows = await conn.fetch(
        """select id from balance_groups
           where ($1::int is null or building_id = $1) and ($2::text is null or utility = $2)
           order by id""",
        building_id,
        utility,
    )
    return [r["id"] for r in rows]


async def _require_group(conn: asyncpg.Connection, group_id: int) -> str:
    utility: str | None = await conn.fetchval(
        "select utility from balance_groups where id = $1", group_id
    )
    if utility is None:
        raise GroupError(f"group {group_id} does not exist")
    return utility


async def _check_meters(conn: asyncpg.Connection, utility: str, meter_ids: list[int]) -> None:
    rows = await world.meters_by_id(conn, list(meter_ids))
    found = {r["id"]: r["utility"] for r in rows}
    missing = sorted(set(meter_ids) - set(found))
    if missing:
        raise GroupError(f"meters {missing} do not exist")
    wrong = sorted(m for m, u in found.items() if u != utility)
    if wrong:
        raise GroupError(f"meters {wrong} are not {utility} meters")


async def create_group(conn: asyncpg.Connection, g: GroupCreate) -> int:
    """Create a group after checking that its meters and parent fit its utility."""
    async with conn.transaction():
        if g.parent_id is not None and await _require_group(conn, g.parent_id) != g.utility:
            raise GroupError(f"parent group {g.parent_id} is not a {g.utility} group")
        balance = [g.balance_meter_id] if g.balance_meter_id else []
        await _check_meters(conn, g.utility, [*g.member_meter_ids, *balance])
        if g.balance_meter_id in g.member_meter_ids:
            raise GroupError("the balance meter cannot also be a member")
        return await _insert_group(conn, g)


async def rename_group(conn: asyncpg.Connection, group_id: int, name: str) -> None:
    await _require_group(conn, group_id)
    await conn.execute("update balance_groups set name = $2 where id = $1", group_id, name)


async def add_members(conn: asyncpg.Connection, group_id: int, meter_ids: list[int]) -> None:
    async with conn.transaction():
        utility = await _require_group(conn, group_id)
        await _check_meters(conn, utility, meter_ids)
        balance_meter = await conn.fetchval(
            "select balance_meter_id from balance_groups where id = $1", group_id
        )
        if balance_meter in meter_ids:
            raise GroupError("the balance meter cannot also be a member")
        await conn.executemany(
            """insert into balance_group_members (group_id, meter_id) values ($1, $2)
               on conflict do nothing""",
            [(group_id, m) for m in meter_ids],
        )


async def remove_members(conn: asyncpg.Connection, group_id: int, meter_ids: list[int]) -> None:
    await _require_group(conn, group_id)
    await conn.execute(
        "delete from balance_group_members where group_id = $1 and meter_id = any($2::int[])",
        group_id,
        meter_ids,
    )


async def delete_group(conn: asyncpg.Connection, group_id: int) -> None:
    """Delete a group; its children move up to its parent."""
    async with conn.transaction():
        await _require_group(conn, group_id)
        await conn.execute(
            """update balance_groups set parent_id = (select parent_id from balance_groups
                                                      where id = $1)
               where parent_id = $1""",
            group_id,
        )
        await conn.execute("delete from balance_groups where id = $1", group_id)
