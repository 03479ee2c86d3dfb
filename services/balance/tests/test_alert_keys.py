"""An alert follows its fault when the fault's cause key moves between analyses (a group's
concurrent faults of one kind are numbered, and the number changes when an earlier one
leaves the window): it stays open under its first key instead of closing, while the new
key would have been taken for the earlier fault's closed episode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from balans_balance.alerts import reconcile
from balans_balance.findings import Finding
from balans_balance.groups import generate_building_groups
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = SiteSpec(code="t-alert-keys", name="Test", address="str. Test 3", latitude=47, longitude=29)


@pytest.fixture(scope="module")
async def group(conn: asyncpg.Connection) -> tuple[int, int]:
    """A small 1a building with its generated groups: (building id, heat group id)."""
    spec = regular_building(
        code="t-alert-keys-1",
        name="Alert keys",
        address="str. Test 3",
        site=SITE,
        layout="1a",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(1,),
    )
    building_id = await write_building(conn, spec, KeyVault(b"k" * 32))
    assert building_id is not None
    await generate_building_groups(conn, building_id)
    group_id = await conn.fetchval(
        "select id from balance_groups where building_id = $1 and utility = 'heat' limit 1",
        building_id,
    )
    return building_id, group_id


def leak(building_id: int, group_id: int, key: str, start: int, end: int, active: bool) -> Finding:
    return Finding(
        kind="leak",
        cause_key=key,
        first_hour=T0 + timedelta(hours=start),
        last_hour=T0 + timedelta(hours=end),
        active=active,
        summary="leak",
        building_id=building_id,
        group_id=group_id,
        reason_code="leak.test",
    )


async def test_an_alert_stays_open_when_its_faults_key_moves(
    conn: asyncpg.Connection, group: tuple[int, int]
) -> None:
    building_id, group_id = group
    plain, second = f"group:{group_id}:leak", f"group:{group_id}:leak:1"
    # a first leak, then a second one beginning while the first goes on (slot 1)
    first_done = leak(building_id, group_id, plain, 0, 100, False)
    await reconcile(
        conn, building_id, [first_done, leak(building_id, group_id, second, 50, 200, True)], T0
    )
    rows = await conn.fetch(
        "select id, cause_key, state from alerts where building_id = $1 order by id", building_id
    )
    assert [(r["cause_key"], r["state"]) for r in rows] == [(plain, "closed"), (second, "open")]
    # the first leak left the window: the second is now the group's only leak (slot 0)
    counts = await reconcile(
        conn, building_id, [leak(building_id, group_id, plain, 50, 230, True)], T0
    )
    after = await conn.fetch(
        "select id, cause_key, state, last_hour from alerts where building_id = $1 order by id",
        building_id,
    )
    assert [(r["cause_key"], r["state"]) for r in after] == [(plain, "closed"), (second, "open")]
    assert after[1]["id"] == rows[1]["id"]
    assert after[1]["last_hour"] == T0 + timedelta(hours=230)
    assert counts == {"opened": 0, "updated": 1, "closed": 0}
    # when it ends, that alert closes
    await reconcile(conn, building_id, [leak(building_id, group_id, plain, 50, 240, False)], T0)
    ended = await conn.fetchrow("select state, last_hour from alerts where id = $1", rows[1]["id"])
    assert (ended["state"], ended["last_hour"]) == ("closed", T0 + timedelta(hours=240))


async def test_an_ended_episode_does_not_take_an_open_faults_alert(
    conn: asyncpg.Connection, group: tuple[int, int]
) -> None:
    """When a key moves, the active finding is matched first: an ended episode over
    overlapping hours listed before it does not take (and close) its alert."""
    building_id, group_id = group
    plain = f"group:{group_id}:leak"
    ended = leak(building_id, group_id, plain, 300, 400, False)
    await reconcile(
        conn, building_id, [ended, leak(building_id, group_id, plain + ":1", 350, 500, True)], T0
    )
    alert_id = await conn.fetchval(
        "select id from alerts where cause_key = $1 and state = 'open'", plain + ":1"
    )
    assert alert_id is not None
    await reconcile(
        conn, building_id, [ended, leak(building_id, group_id, plain + ":2", 350, 520, True)], T0
    )
    still = await conn.fetchrow("select state, last_hour from alerts where id = $1", alert_id)
    assert (still["state"], still["last_hour"]) == ("open", T0 + timedelta(hours=520))
    assert not await conn.fetchval("select count(*) from alerts where cause_key = $1", plain + ":2")
