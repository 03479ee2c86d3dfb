"""The operator's investigation endpoints: the alert queue (summary only, filters, sort,
paging, counts), one alert with its evidence as series and its history, a flat's card,
its hourly explanation and the search by flat, account or serial."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from .conftest import World, auth, points

pytestmark = pytest.mark.asyncio(loop_scope="session")

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

ALERT = """
insert into alerts (kind, cause_key, state, building_id, group_id, meter_id, first_hour,
                    last_hour, closed_at, summary, evidence, reason_code, reason_params,
                    detected_hour, began_before)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'test alert', $10::jsonb, $11, '{}'::jsonb,
        $12, $13)
returning id
"""


async def _insert(conn: asyncpg.Connection, **a: Any) -> int:
    import json

    return int(
        await conn.fetchval(
            ALERT,
            a["kind"],
            f"ops-test:{a['kind']}:{a['first'].isoformat()}",
            a.get("state", "open"),
            a["building"],
            a.get("group"),
            a.get("meter"),
            a["first"],
            a.get("last", NOW),
            None if a.get("state", "open") == "open" else NOW,
            json.dumps(a.get("evidence", {})),
            a.get("reason", f"{a['kind']}.test"),
            a["first"] + timedelta(days=1),
            a.get("before", False),
        )
    )


@pytest.fixture(scope="module")
async def alerts(world: World) -> dict[str, int]:
    """A stuck meter in the world's flat, a leak of a group with evidence series in the
    world's building, and a closed alert in the other building."""
    conn = await asyncpg.connect(world.database_url)
    try:
        group = await conn.fetchval(
            """insert into balance_groups (name, utility, kind, building_id)
               values ('ops test', 'heat', 'custom', $1) returning id""",
            world.building_id,
        )
        await conn.execute(
            """insert into imbalance_series (group_id, resolution, period_start, unit,
                                             balance_value, subscribers_value, imbalance,
                                             band_low, band_high, night)
               select $1, 'day', d, 'kWh', 100, 90, 10, -5, 5, false
               from generate_series($2::timestamptz - interval '20 days', $2, '1 day') d""",
            group,
            NOW,
        )
        stuck = await _insert(
            conn,
            kind="stuck_meter",
            building=world.building_id,
            meter=world.meter_id,
            first=NOW - timedelta(days=10),
            before=True,
            evidence={
                "rule": "the register stood still",
                "loss": 0.93,
                "series_from": (NOW - timedelta(hours=3)).isoformat(),
                "peers_predicted": [0.5, None, 0.7],
            },
        )
        leak = await _insert(
            conn,
            kind="leak",
            building=world.building_id,
            group=group,
            first=NOW - timedelta(days=5),
            evidence={
                "rule": "a step",
                "coefficient": 4.2,
                "also_possible": ["unauthorised_connection"],
                "series_from": (NOW - timedelta(hours=3)).isoformat(),
                "imbalance_share": [0.01, 0.2, None, 0.22],
            },
        )
        closed = await _insert(
            conn,
            kind="dead_module",
            state="closed",
            building=world.other_building_id,
            first=NOW - timedelta(days=40),
            last=NOW - timedelta(days=35),
        )
        await conn.execute(
            """insert into audit_log (actor, action, target, detail)
               values ('operator', 'alert.acknowledge', $1, '{"note": "crew sent"}')""",
            f"alert:{leak}",
        )
        return {"stuck": stuck, "leak": leak, "closed": closed, "group": group}
    finally:
        await conn.close()


async def _get(client: httpx.AsyncClient, world: World, path: str, role: str = "operator") -> Any:
    response = await client.get("/api/v1" + path, headers=auth(world, role))
    assert response.status_code == 200, response.text
    return response.json()


async def test_queue_is_a_summary_with_filters_sort_and_counts(
    client: httpx.AsyncClient, world: World, alerts: dict[str, int]
) -> None:
    """No evidence in the list; building, flat and the fault's first hour are there; the
    filters, the sort by when the fault began and its paging, the counts by kind."""
    page = await _get(client, world, f"/alerts?building_id={world.building_id}")
    items = {a["id"]: a for a in page["items"]}
    stuck = items[alerts["stuck"]]
    assert "evidence" not in stuck
    assert stuck["building_name"]
    assert stuck["meter_serial"]
    assert stuck["flat_id"] == world.flat_id
    assert stuck["flat_number"]
    assert stuck["began_at"] == (NOW - timedelta(days=10)).isoformat().replace("+00:00", "Z")
    assert stuck["began_before"] is True
    assert stuck["reason_code"] == "stuck_meter.test"
    assert alerts["closed"] not in items
    leaks = await _get(client, world, "/alerts?kind=leak&state=open")
    recent = await _get(client, world, f"/alerts?since={NOW - timedelta(days=1):%Y-%m-%dT%H:%M}")
    assert alerts["closed"] not in [a["id"] for a in recent["items"]]
    assert [a["id"] for a in leaks["items"]] == [alerts["leak"]]
    old = await _get(client, world, f"/alerts?until={NOW - timedelta(days=30):%Y-%m-%d}")
    assert [a["id"] for a in old["items"]] == [alerts["closed"]]
    # newest fault first, one per page, the cursor carries on
    seen, cursor = [], ""
    while True:
        page = await _get(client, world, f"/alerts?sort=-began&limit=1{cursor}")
        seen += [a["id"] for a in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen[:3] == [alerts["leak"], alerts["stuck"], alerts["closed"]][: len(seen[:3])]
    assert len(seen) == len(set(seen)) == len((await _get(client, world, "/alerts"))["items"])
    counts = await _get(client, world, f"/alerts/counts?building_id={world.building_id}")
    assert counts["by_kind"]["leak"] == 1
    assert counts["by_kind"]["stuck_meter"] == 1
    assert counts["open"] == sum(counts["open_by_kind"].values())
    assert counts["open_by_building"] == {str(world.building_id): counts["open"]}
    bad = await client.get("/api/v1/alerts?sort=-began&cursor=eA", headers=auth(world, "admin"))
    assert bad.status_code == 400


async def test_alert_detail_draws_the_evidence(
    client: httpx.AsyncClient, world: World, alerts: dict[str, int]
) -> None:
    """The meter's use around the fault equals its consumption series; a group fault
    brings balance's series with the band and the series kept in the evidence; the
    history names who acknowledged with the note; a consumer sees its own flat's alert."""
    stuck = await _get(client, world, f"/alerts/{alerts['stuck']}")
    assert stuck["figures"] == {"loss": 0.93}
    [meter] = [s for s in stuck["series"] if s["name"] == "meter"]
    assert meter["resolution"] == "day"
    assert meter["values"]
    first, last = points(meter)[0]["t"], points(meter)[-1]["t"]
    consumption = await _get(
        client,
        world,
        f"/meters/{world.meter_id}/consumption?resolution=day&from={first}"
        f"&to={datetime.fromisoformat(last) + timedelta(days=1):%Y-%m-%dT%H:%M:%SZ}",
    )
    assert (meter["start"], meter["values"]) == (consumption["start"], consumption["values"])
    assert [e["action"] for e in stuck["history"]] == ["opened"]
    # what the peers predict, beside what the meter registered in the same hours
    series = {s["name"]: s for s in stuck["series"]}
    assert series["peers_predicted"]["values"] == [0.5, None, 0.7]
    assert series["peers_predicted"]["step"] == "PT1H"
    assert series["peers_predicted"]["unit"] == series["meter_hourly"]["unit"] == meter["unit"]
    hourly = await _get(
        client,
        world,
        f"/meters/{world.meter_id}/consumption?resolution=hour"
        f"&from={NOW - timedelta(hours=3):%Y-%m-%dT%H:%M:%SZ}&to={NOW:%Y-%m-%dT%H:%M:%SZ}",
    )
    assert series["meter_hourly"]["start"] == hourly["start"]
    assert series["meter_hourly"]["values"] == hourly["values"]
    leak = await _get(client, world, f"/alerts/{alerts['leak']}")
    names = {s["name"] for s in leak["series"]}
    assert {"balance_meter", "members", "imbalance", "band_low", "band_high"} <= names
    [share] = [s for s in leak["series"] if s["name"] == "imbalance_share"]
    assert share["values"] == [0.01, 0.2, None, 0.22]
    assert leak["also_possible"] == ["unauthorised_connection"]
    assert [(e["action"], e["actor"], e["note"]) for e in leak["history"]] == [
        ("opened", "balance", ""),
        ("acknowledged", "operator", "crew sent"),
    ]
    mine = await _get(client, world, f"/alerts/{alerts['stuck']}", "consumer")
    assert mine["id"] == alerts["stuck"]
    other = await client.get(f"/api/v1/alerts/{alerts['leak']}", headers=auth(world, "consumer"))
    assert other.status_code == 404


async def test_flat_card_and_hourly_explanation(
    client: httpx.AsyncClient, world: World, alerts: dict[str, int]
) -> None:
    """The card lists the flat's meters with valve state from the last done command, the
    commands, the account and the open alert; the hourly trail adds up to the parts."""
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into commands (id, meter_id, module_serial, concentrator_serial, action,
                                     status, requested_by)
               values ('ops-1', $1, 1, 1, 'valve_close', 'done', 'operator')""",
            world.valve_meter_id,
        )
    finally:
        await conn.close()
    card = await _get(client, world, f"/flats/{world.flat_id}/card")
    meters = {m["id"]: m for m in card["meters"]}
    assert meters[world.valve_meter_id]["valve_state"] == "closed"
    assert all(m["valve_state"] is None for m in card["meters"] if not m["has_valve"])
    assert [c["id"] for c in card["commands"]] == ["ops-1"]
    assert [a["id"] for a in card["accounts"]] == [world.account_id]
    assert [a["id"] for a in card["open_alerts"]] == [alerts["stuck"]]
    denied = await client.get(
        f"/api/v1/flats/{world.flat_id}/card", headers=auth(world, "consumer")
    )
    assert denied.status_code == 403
    day = (NOW - timedelta(days=2)).replace(hour=0)
    x = await _get(
        client,
        world,
        f"/flats/{world.flat_id}/explain?from={day:%Y-%m-%dT%H:%M:%SZ}"
        f"&to={day + timedelta(hours=6):%Y-%m-%dT%H:%M:%SZ}",
    )
    assert len(x["hours"]) == 6
    assert sum(h["total_kwh"] for h in x["hours"]) == pytest.approx(x["parts"]["total_kwh"], 1e-3)
    assert sum(h["common_kwh"] for h in x["hours"]) == pytest.approx(x["parts"]["common_kwh"], 1e-3)
    too_long = await client.get(
        f"/api/v1/flats/{world.flat_id}/explain?from=2026-01-01&to=2026-03-01",
        headers=auth(world, "operator"),
    )
    assert too_long.status_code == 400


async def test_search_by_flat_account_and_serial(client: httpx.AsyncClient, world: World) -> None:
    """A flat is found by its number with a word of its address, by its account number,
    by its meter's serial and by its module's serial."""
    conn = await asyncpg.connect(world.database_url)
    try:
        flat = await conn.fetchrow(
            """select f.number, split_part(b.address, ' ', 1) as word from flats f
               join buildings b on b.id = f.building_id where f.id = $1""",
            world.flat_id,
        )
        account = await conn.fetchval("select number from accounts where id = $1", world.account_id)
        serial = await conn.fetchval("select serial from meters where id = $1", world.meter_id)
        module = await conn.fetchval(
            "select serial from radio_modules where flat_id = $1 limit 1", world.flat_id
        )
    finally:
        await conn.close()
    queries = [f"{flat['number']} {flat['word']}", account, serial]
    queries += [str(module)] if module is not None else []
    for q in queries:
        hits = await _get(client, world, "/search?" + httpx.QueryParams(q=q).__str__())
        assert world.flat_id in [h["id"] for h in hits["items"]], q
    none = await _get(client, world, "/search?q=no-such-thing-anywhere")
    assert none["items"] == []
    denied = await client.get("/api/v1/search?q=1", headers=auth(world, "consumer"))
    assert denied.status_code == 403
