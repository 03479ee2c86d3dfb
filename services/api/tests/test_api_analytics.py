"""Balance groups, the residents' ranking, the network, statements and the estimator."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _group(
    world: World, utility: str = "cold_water", member_role: str = "flat"
) -> tuple[int, int, list[int]]:
    """A balance group: a building meter over three meters of the building."""
    conn = await asyncpg.connect(world.database_url)
    try:
        balance_meter = await conn.fetchval(
            "select id from meters where building_id = $1 and role = 'building' and utility = $2",
            world.building_id,
            utility,
        )
        members = [
            r["id"]
            for r in await conn.fetch(
                "select id from meters where building_id = $1 and role = $2 and utility = $3 "
                "order by id limit 3",
                world.building_id,
                member_role,
                utility,
            )
        ]
        group = await conn.fetchval(
            """insert into balance_groups (name, utility, kind, building_id, balance_meter_id)
               values ('test group', $3, 'custom', $1, $2) returning id""",
            world.building_id,
            balance_meter,
            utility,
        )
        await conn.executemany(
            "insert into balance_group_members (group_id, meter_id) values ($1, $2)",
            [(group, m) for m in members],
        )
        return group, balance_meter, members
    finally:
        await conn.close()


async def test_imbalance_says_when_balance_has_no_series(
    client: httpx.AsyncClient, world: World
) -> None:
    """The api computes no imbalance of its own: without balance's series there are no
    values, and ``note`` says why; an unknown group is a 404."""
    group, _, _ = await _group(world, "heat", "riser")
    h = auth(world, "manager")
    response = await client.get(f"/api/v1/balance-groups/{group}/imbalance", headers=h)
    assert response.status_code == 200
    series = response.json()
    assert series["start"] is None
    assert series["imbalance"] == series["balance_value"] == series["partial"] == []
    assert series["unit"] is None
    assert "balance has no day series" in series["note"]
    missing = await client.get("/api/v1/balance-groups/999999/imbalance", headers=h)
    assert missing.status_code == 404


async def test_imbalance_is_balances_series(client: httpx.AsyncClient, world: World) -> None:
    """Where balance has stored a series with its learned band, the api serves it."""
    group, _, _ = await _group(world)
    t = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into imbalance_series (group_id, resolution, period_start, unit,
                   balance_value, subscribers_value, imbalance, band_low, band_median,
                   band_high, coverage)
               values ($1, 'day', $2, 'kWh', 100, 90, 10, -5, 1, 5, 0.9),
                      ($1, 'hour', $2, 'kWh', 40, 30, 10, null, null, null, 1),
                      ($1, 'hour', $2 + interval '1 hour', 'kWh', 60, 60, 0, null, null,
                       null, 1)""",
            group,
            t,
        )
        building = await conn.fetchval(
            "select building_id from balance_groups where id = $1", group
        )
        alert = await conn.fetchval(
            """insert into alerts (kind, cause_key, building_id, group_id, first_hour,
                                   last_hour, summary, severity)
               values ('leak', 'analytics-test', $1, $2, $3::timestamptz,
                       $3::timestamptz + interval '5 hours',
                       'a leak', 'warning') returning id""",
            building,
            group,
            t - timedelta(hours=3),
        )
    finally:
        await conn.close()
    h = auth(world, "operator")
    series = (await client.get(f"/api/v1/balance-groups/{group}/imbalance", headers=h)).json()
    assert series["note"] is None
    assert series["unit"] == "kWh"
    assert (series["resolution"], series["step"]) == ("day", "P1D")
    assert datetime.fromisoformat(series["start"]) == t
    assert series["imbalance_pct"] == pytest.approx([10.0])
    assert (series["band_low"], series["band_median"], series["band_high"]) == ([-5], [1], [5])
    assert series["members_value"] == [90]
    assert series["coverage"] == pytest.approx([0.9])
    assert series["partial"] == [0]  # a day balance has 90 % of the hours of is not whole
    [span] = series["alert_spans"]
    assert (span["id"], span["kind"], span["state"]) == (alert, "leak", "open")
    assert datetime.fromisoformat(span["began"]) == t - timedelta(hours=3)
    # the two hours: 100 kWh on the meter, 90 on the members
    losses = series["losses"]
    assert (losses["balance_value"], losses["members_value"], losses["loss"]) == (100, 90, 10)
    assert losses["loss_pct"] == pytest.approx(10.0)
    assert losses["hours"] == 2


async def test_riser_ranking_is_sorted(client: httpx.AsyncClient, world: World) -> None:
    """Risers are ranked by heat per m², lowest first, covering every riser once."""
    h = auth(world, "consumer")
    ranking = (await client.get(f"/api/v1/buildings/{world.building_id}/ranking", headers=h)).json()
    per_m2 = [g["kwh_per_m2"] for g in ranking["groups"]]
    assert per_m2 == sorted(per_m2)
    assert len(ranking["groups"]) == 34


async def test_modules_show_latest_status(client: httpx.AsyncClient, world: World) -> None:
    """A module's newest status row is what the network endpoint reports."""
    conn = await asyncpg.connect(world.database_url)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        serial = await conn.fetchval(
            "select serial from radio_modules where building_id = $1 order by id limit 1",
            world.building_id,
        )
        await conn.executemany(
            """insert into module_status (module_serial, ts, battery_mv, rssi_dbm, hops,
                   parent_serial, tamper, error_bits) values ($1, $2, $3, -80, 2, 7, false, 0)""",
            [(serial, now - timedelta(hours=2), 3600), (serial, now - timedelta(hours=1), 3100)],
        )
    finally:
        await conn.close()
    h = auth(world, "operator")
    modules = (
        await client.get(f"/api/v1/modules?building_id={world.building_id}&limit=1", headers=h)
    ).json()["items"]
    assert modules[0]["serial"] == serial
    assert modules[0]["battery_mv"] == 3100
    overview = (
        await client.get(f"/api/v1/buildings/{world.building_id}/overview", headers=h)
    ).json()
    assert overview["modules_low_battery"] >= 1


async def test_statement_compares_months(client: httpx.AsyncClient, world: World) -> None:
    """The statement's change vs the previous month follows from its two totals."""
    h = auth(world, "consumer")
    s = (await client.get(f"/api/v1/flats/{world.flat_id}/statement", headers=h)).json()
    assert s["previous_month_kwh"] > 0
    assert s["change_vs_previous_pct"] == pytest.approx(
        100 * (s["kwh"] - s["previous_month_kwh"]) / s["previous_month_kwh"]
    )
    assert s["comparable_user_kwh"] > 0


async def test_estimator_reference_building(client: httpx.AsyncClient, world: World) -> None:
    """An empty request prices docs/domain.md's reference building: variant 1c costs 71 164 MDL."""
    h = auth(world, "manager")
    report = (await client.post("/api/v1/estimator", json={}, headers=h)).json()
    totals = {v["variant"]: v["total"] for v in report["variants"]}
    assert float(totals["1c"]) == 71164


async def test_estimator_extremes_are_422(client: httpx.AsyncClient, world: World) -> None:
    """Inputs the cost model cannot compute with answer 422, not 500."""
    h = auth(world, "manager")
    body = {"heating": {"season_months": "1e30"}}
    response = await client.post("/api/v1/estimator", json=body, headers=h)
    assert response.status_code == 422


async def _invoice(conn: asyncpg.Connection, account_id: int, building_id: int) -> int:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    invoice = await conn.fetchval(
        """insert into invoices (account_id, building_id, period_start, period_end, kind, total,
                                 issuer, number, due_on)
           values ($1, $2, $3, $4, 'invoice', 1234.56, 'test', 'test-' || $1::int,
                   '2026-02-20') returning id""",
        account_id,
        building_id,
        start,
        start + timedelta(days=31),
    )
    await conn.executemany(
        """insert into invoice_lines (invoice_id, line_no, utility, code, description, quantity,
                                      unit, unit_price, amount)
           values ($1, $2, 'heat', $3, $3, 1, 'kWh', 1, $4)""",
        [(invoice, 2, "operations", 234.56), (invoice, 1, "consumption", 1000)],
    )
    return int(invoice)


async def test_invoices_are_private_and_exact(client: httpx.AsyncClient, world: World) -> None:
    """A consumer lists only their own invoices, with decimal totals and ordered lines;
    another account's invoice is a 404."""
    conn = await asyncpg.connect(world.database_url)
    try:
        mine = await _invoice(conn, world.account_id, world.building_id)
        other_account = await conn.fetchval(
            "select id from accounts where flat_id = $1", world.other_flat_id
        )
        other = await _invoice(conn, other_account, world.other_building_id)
    finally:
        await conn.close()
    h = auth(world, "consumer")
    listed = (await client.get("/api/v1/invoices", headers=h)).json()["items"]
    assert [i["id"] for i in listed] == [mine]
    assert listed[0]["total"] == "1234.56"
    detail = (await client.get(f"/api/v1/invoices/{mine}", headers=h)).json()
    assert [line["code"] for line in detail["lines"]] == ["consumption", "operations"]
    assert (await client.get(f"/api/v1/invoices/{other}", headers=h)).status_code == 404


async def test_profile_carries_balance_forecast(client: httpx.AsyncClient, world: World) -> None:
    """A meter's month-end forecast from balance's forecasts table appears in the profile."""
    h = auth(world, "consumer")
    month = datetime.now(UTC).strftime("%Y-%m")
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into forecasts (scope, scope_id, month, unit, consumed_to_date,
                   forecast_total, hdd_to_date, hdd_month, as_of)
               values ('meter', $1, $2, 'm3', 1, 42.5, 1, 2, now())""",
            world.meter_id,
            datetime.strptime(month, "%Y-%m").date(),
        )
    finally:
        await conn.close()
    profile = (
        await client.get(f"/api/v1/flats/{world.flat_id}/profile?month={month}", headers=h)
    ).json()
    forecasts = {m["meter_id"]: m["forecast"] for m in profile["meters"]}
    assert forecasts[world.meter_id] == 42.5
    assert len([f for f in forecasts.values() if f is not None]) == 1
