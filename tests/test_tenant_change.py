"""Tenant changes, vacant flats, verification due dates and historical readings, through
the REST API against a real PostgreSQL, then billed: two invoices whose heat sums to the
flat's month and whose days do not overlap, each consumer seeing only its own days, vacant
days billed to the owner account, and readings entered twice stored once."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import typer
from typer.testing import CliRunner

from balans_allocation.explain import explain
from balans_api.app import create_app
from balans_api.cli import register
from balans_api.settings import ApiSettings
from balans_api.users import create_user
from balans_balance.alerts import reconcile
from balans_balance.detectors.verification_due import verification_findings
from balans_billing import render, storage
from balans_billing.document import load_document
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_billing.tariffs import TariffSpec
from balans_db.provisioning.csv_tables import tables_from_zip
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.validation import parse_document
from balans_db.queries import allocation
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building

pytestmark = pytest.mark.asyncio(loop_scope="session")

D = Decimal
TZ = "Europe/Chisinau"
JAN = month_bounds(2026, 1, TZ)
SITE = SiteSpec(code="t-tenancy", name="Test", address="str. Test 2", latitude=47, longitude=28.8)
PASSWORD = "correct-horse-battery"
KWH_PER_HOUR = 1.163  # 0.001 Gcal an hour: a flat's January is 0.744 Gcal


@pytest.fixture(scope="module")
async def block(conn: asyncpg.Connection) -> dict[str, Any]:
    """A 1c block of 2 flats (heat only), January allocated at a constant rate, a heat
    tariff with monthly charges."""
    spec = regular_building(
        code="t-tenancy-1c",
        name="Tenancy block",
        address="str. Test 2",
        site=SITE,
        layout="1c",
        floors=1,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=77,
        multi_utility_every=1000,
    )
    building_id = await write_building(conn, spec, KeyVault())
    flats = {
        r["number"]: r["id"]
        for r in await conn.fetch(
            "select id, number from flats where building_id = $1", building_id
        )
    }
    hours = int((JAN[1] - JAN[0]).total_seconds() // 3600)
    await conn.executemany(
        """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
               common_kwh, method) values ($1, $2, $3, $4, $4, 0, 'test')""",
        [
            (building_id, fid, JAN[0] + timedelta(hours=h), KWH_PER_HOUR)
            for fid in flats.values()
            for h in range(hours)
        ],
    )
    await allocation.refresh_days(conn, [(building_id, JAN[0], JAN[1] - timedelta(hours=1))])
    heat = {
        "utility": "heat",
        "unit": "Gcal",
        "supplier": "tenancy",
        "effective_from": "2025-07-01",
        "fixed_per_month": "31",
        "operations_per_point_month": "62",
        "blocks": [{"from_qty": 0, "price": "1000"}],
    }
    await storage.add_tariff(conn, TariffSpec.model_validate(heat))
    await conn.execute(
        """insert into billing_suppliers (building_id, utility, supplier)
           values ($1, 'heat', 'tenancy')""",
        building_id,
    )
    accounts = {
        r["number"]: r["id"]
        for r in await conn.fetch(
            "select a.number, a.flat_id, a.id from accounts a where a.flat_id = any($1::int[])",
            list(flats.values()),
        )
    }
    meter = await conn.fetchrow(
        "select serial from meters where flat_id = $1 and role = 'flat'", flats["1"]
    )
    return {"id": building_id, "flats": flats, "accounts": accounts, "meter": meter["serial"]}


@pytest.fixture(scope="module")
async def client(database_url: str, conn: asyncpg.Connection) -> AsyncIterator[httpx.AsyncClient]:
    await create_user(conn, "t-operator", PASSWORD, "operator")
    app = create_app(ApiSettings(database_url=database_url, login_rate="1000/minute"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            http.headers["Authorization"] = await _token(http, "t-operator")
            yield http


async def _token(http: httpx.AsyncClient, username: str) -> str:
    response = await http.post(
        "/api/v1/auth/token", data={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return f"Bearer {response.json()['access_token']}"


def _flat_account(block: dict[str, Any], flat: str) -> str:
    return next(n for n in block["accounts"] if n.endswith(f"-{flat}") or n.endswith(flat))


async def _heat_hours(http: httpx.AsyncClient, token: str, flat_id: int) -> list[datetime]:
    response = await http.get(
        f"/api/v1/flats/{flat_id}/heat",
        params={"from": "2026-01-01", "to": "2026-02-01", "limit": 1000},
        headers={"Authorization": token},
    )
    assert response.status_code == 200, response.text
    return [datetime.fromisoformat(x["t"]) for x in response.json()["items"]]


async def _job(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            body: dict[str, Any] = (await http.get(f"/api/v1/imports/{job_id}")).json()
            if body["status"] in ("succeeded", "failed"):
                return body
            await asyncio.sleep(0.05)


async def _counts(conn: asyncpg.Connection) -> tuple[int, int]:
    return (
        await conn.fetchval("select count(*) from accounts"),
        await conn.fetchval("select count(*) from pulse_readings"),
    )


async def test_tenant_change_splits_the_month(
    client: httpx.AsyncClient, conn: asyncpg.Connection, block: dict[str, Any]
) -> None:
    flats = block["flats"]
    old_number = (
        await conn.fetchrow("select number from accounts where flat_id = $1", flats["1"])
    )["number"]
    before = await _counts(conn)
    refused = await client.post(
        "/api/v1/accounts/change",
        json={
            "building": "t-tenancy-1c",
            "flat": "1",
            "on": "2026-01-11",
            "account": {"number": old_number, "holder_name": "New tenant"},
            "readings": [{"meter": "no-such-meter", "register": "1"}],
        },
    )
    assert refused.status_code == 422, refused.text
    paths = {p["path"] for p in refused.json()["error"]["details"]}
    assert {"account.number", "readings[0].meter", "readings[0].serial"} <= paths
    assert await _counts(conn) == before  # nothing written

    change = {
        "building": "t-tenancy-1c",
        "flat": "1",
        "on": "2026-01-11",
        "account": {"number": "t-tenancy-1-b", "holder_name": "New tenant", "residents": 2},
        "readings": [{"meter": block["meter"], "register": "12.345"}],
    }
    done = await client.post("/api/v1/accounts/change", json=change)
    assert done.status_code == 200, done.text
    body = done.json()
    assert [a["closed_on"] for a in body["accounts"]] == ["2026-01-11", None]
    assert body["accounts"][1]["opened_on"] == "2026-01-11"
    assert body["readings_inserted"] == 1
    stored = await conn.fetchval(
        """select p.ts from pulse_readings p join channels c on c.module_serial = p.module_serial
           and c.input = p.input join meters m on m.id = c.meter_id where m.serial = $1""",
        block["meter"],
    )
    assert stored == datetime(2026, 1, 10, 22, tzinfo=UTC)  # local midnight of the 11th

    owner = await client.post(
        "/api/v1/accounts",
        json={
            "building": "t-tenancy-1c",
            "flat": None,
            "number": "t-tenancy-owner",
            "holder_name": "Housing association",
        },
    )
    assert owner.status_code == 201, owner.text
    second = (await conn.fetchrow("select number from accounts where flat_id = $1", flats["2"]))[
        "number"
    ]
    closed = await client.post(f"/api/v1/accounts/{second}/close", json={"closed_on": "2026-01-21"})
    assert closed.status_code == 200, closed.text
    flat2 = await client.get(f"/api/v1/flats/{flats['2']}")
    assert flat2.json()["vacant"] is True
    assert (await client.get(f"/api/v1/flats/{flats['1']}")).json()["vacant"] is False

    issued = await bill_building(conn, block["id"], *JAN)
    by_number = {
        r["number"]: r["id"]
        for r in await conn.fetch(
            "select id, number from accounts where number = any($1::text[])",
            [old_number, "t-tenancy-1-b", "t-tenancy-owner", second],
        )
    }
    invoices = {i.account_id: i for i in issued}
    assert set(invoices) == set(by_number.values())
    lines = {
        number: {
            (ln.code): ln
            for inv in await storage.invoices_for_period(conn, block["id"], *JAN)
            if inv.account_id == aid
            for ln in inv.lines
        }
        for number, aid in by_number.items()
    }
    # heat of the flat's month (744 h x 0.001 Gcal) split 10 days / 21 days
    assert lines[old_number]["block_1"].quantity == D("0.240")
    assert lines["t-tenancy-1-b"]["block_1"].quantity == D("0.504")
    assert lines[old_number]["block_1"].quantity + lines["t-tenancy-1-b"]["block_1"].quantity == D(
        "0.744"
    )
    # the monthly charges by days: their months add up to one, so the days do not overlap
    assert lines[old_number]["fixed"].quantity == D("0.323")
    assert lines["t-tenancy-1-b"]["fixed"].quantity == D("0.677")
    assert lines[old_number]["fixed"].amount + lines["t-tenancy-1-b"]["fixed"].amount == D("31.00")
    # flat 2: its holder 20 days, the owner account the 11 vacant days
    assert lines[second]["block_1"].quantity == D("0.480")
    assert lines["t-tenancy-owner"]["block_1"].quantity == D("0.264")
    assert lines["t-tenancy-owner"]["fixed"].quantity == D("0.355")
    assert await bill_building(conn, block["id"], *JAN) == []  # idempotent

    # each invoice document shows its account's own days; the owner's has no flat
    old_doc = await load_document(conn, invoices[by_number[old_number]].invoice_id)
    assert (old_doc.period_first_day, old_doc.period_last_day) == (
        date(2026, 1, 1),
        date(2026, 1, 10),
    )
    assert old_doc.heat_data is not None
    assert old_doc.heat_data.hours == old_doc.heat_data.hours_in_period == 240
    new_doc = await load_document(conn, invoices[by_number["t-tenancy-1-b"]].invoice_id)
    assert new_doc.period_first_day == date(2026, 1, 11)
    owner_doc = await load_document(conn, invoices[by_number["t-tenancy-owner"]].invoice_id)
    assert owner_doc.flat_number is None
    assert "Housing association" in render.to_html(owner_doc)

    # a move-out recorded after the month was invoiced: billing is asked to bill it again,
    # and the correction credits the days the account no longer holds
    pending = await conn.fetchval(
        "select count(*) from api_outbox where subject like 'balans.events.period.%'"
    )
    late = await client.post(
        "/api/v1/accounts/t-tenancy-1-b/close", json={"closed_on": "2026-01-26"}
    )
    assert late.status_code == 200, late.text
    assert (
        await conn.fetchval(
            "select count(*) from api_outbox where subject like 'balans.events.period.%'"
        )
        == pending + 1
    )
    corrections = await bill_building(conn, block["id"], *JAN)
    credited = {c.account_id: c.total for c in corrections}
    assert credited[by_number["t-tenancy-1-b"]] < 0
    assert credited[by_number["t-tenancy-owner"]] > 0
    assert (
        await conn.execute("update accounts set closed_on = null where number = 't-tenancy-1-b'")
        == "UPDATE 1"
    )
    await bill_building(conn, block["id"], *JAN)  # back as it was, for what follows

    # the periods and the owner account survive export and import unchanged
    exported = await client.get("/api/v1/exports", params={"building": "t-tenancy-1c"})
    doc = exported.json()
    accounts = {a["number"]: a for a in doc["buildings"][0]["accounts"]}
    assert accounts["t-tenancy-owner"]["flat"] is None
    assert accounts[old_number]["closed_on"] == "2026-01-11"
    report = await import_document(conn, parse_document(doc), KeyVault())
    assert not report.changed

    # each consumer sees only its own days of the flat
    await create_user(conn, "t-old", PASSWORD, "consumer", by_number[old_number])
    await create_user(conn, "t-new", PASSWORD, "consumer", by_number["t-tenancy-1-b"])
    change_at = datetime(2026, 1, 10, 22, tzinfo=UTC)
    old_hours = await _heat_hours(client, await _token(client, "t-old"), flats["1"])
    new_hours = await _heat_hours(client, await _token(client, "t-new"), flats["1"])
    assert len(old_hours) == 240
    assert max(old_hours) < change_at
    assert len(new_hours) == 504
    assert min(new_hours) == change_at
    # the portal's views of the flat are cut the same way
    old_token = await _token(client, "t-old")
    for month, days in (("2026-01", 10), ("2026-02", 0)):
        view = await client.get(
            f"/api/v1/flats/{flats['1']}/profile",
            params={"month": month},
            headers={"Authorization": old_token},
        )
        assert view.status_code == 200, view.text
        assert sum(v is not None for v in view.json()["heat"]["values"]) == days
    history = await client.get(
        f"/api/v1/flats/{flats['1']}/history",
        params={"month": "2026-01"},
        headers={"Authorization": await _token(client, "t-new")},
    )
    assert sum(v is not None for v in history.json()["current"]["values"]) == 21


async def test_verification_due(
    client: httpx.AsyncClient, conn: asyncpg.Connection, block: dict[str, Any]
) -> None:
    """A heat meter verified 5 years less 10 days ago (heat: 5 years) is due within 30
    days, not within 5; its own longer interval takes it off the list."""
    today = datetime.now(UTC).date()
    verified = date(today.year - 5, today.month, min(today.day, 28)) + timedelta(days=10)
    await conn.execute(
        "update meters set verified_on = $2 where serial = $1", block["meter"], verified
    )

    async def due(days: int) -> list[str]:
        response = await client.get(
            "/api/v1/meters/verification-due", params={"days": days, "building": "t-tenancy-1c"}
        )
        assert response.status_code == 200, response.text
        return [m["serial"] for m in response.json()["items"]]

    assert block["meter"] in await due(30)
    assert block["meter"] not in await due(5)

    # the alert opens before expiry, and closes when the new verification is recorded
    now = datetime.now(UTC)
    findings = await verification_findings(conn, block["id"], now)
    assert [f.kind for f in findings] == ["verification_due"]
    await reconcile(conn, block["id"], findings, now)
    alert = await conn.fetchrow(
        "select state, severity, meter_id from alerts where kind = 'verification_due'"
    )
    assert alert["state"] == "open"
    assert alert["severity"] == "info"
    await conn.execute(
        "update meters set verified_on = $2 where serial = $1", block["meter"], today
    )
    await reconcile(conn, block["id"], await verification_findings(conn, block["id"], now), now)
    assert (
        await conn.fetchval("select state from alerts where id = (select max(id) from alerts)")
        == "closed"
    )
    await conn.execute(
        "update meters set verified_on = $2 where serial = $1", block["meter"], verified
    )
    await conn.execute(
        "update meters set verification_interval_years = 10 where serial = $1", block["meter"]
    )
    assert block["meter"] not in await due(30)

    # the explanation trail marks an expired meter and says how its readings count
    await conn.execute(
        "update meters set verified_on = '2015-01-01' where serial = $1", block["meter"]
    )
    trail = await explain(conn, block["flats"]["1"], *JAN)
    assert trail is not None
    (meter,) = [m for m in trail.meters if m.serial == block["meter"]]
    assert meter.verification_due_on == date(2025, 1, 1)
    assert meter.expired_readings == "measured"
    await conn.execute(
        """update buildings set methodology = '{"expired_meter_readings": "estimated"}'
           where id = $1""",
        block["id"],
    )
    trail = await explain(conn, block["flats"]["1"], *JAN)
    assert trail is not None
    assert [m.expired_readings for m in trail.meters if m.serial == block["meter"]] == ["estimated"]
    await conn.execute("update buildings set methodology = '{}' where id = $1", block["id"])
    await conn.execute(
        "update meters set verification_interval_years = null where serial = $1", block["meter"]
    )


async def test_historical_readings_csv(
    client: httpx.AsyncClient, conn: asyncpg.Connection, block: dict[str, Any]
) -> None:
    """The same CSV twice stores its readings once; a malformed one is a 422 naming each
    bad row, and writes nothing."""
    csv_text = "serial,time,register\n" + "".join(
        f"{block['meter']},2025-12-{day:02d}T00:00:00+02:00,{D('10') + day}\n" for day in (1, 2, 3)
    )
    headers = {"Content-Type": "text/csv"}
    first = await client.post("/api/v1/imports/readings", content=csv_text, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 3, "inserted": 3}
    before = await _counts(conn)
    again = await client.post("/api/v1/imports/readings", content=csv_text, headers=headers)
    assert again.json() == {"received": 3, "inserted": 0}
    assert await _counts(conn) == before
    bad = (
        "serial,time,register\n"
        f"{block['meter']},2025-12-05T00:00:00+02:00,20\n"
        f"{block['meter']},yesterday,20\n"
        "no-such-meter,2025-12-05T00:00:00+02:00,20\n"
        f"{block['meter']},2025-12-06T00:00:00+02:00,-1\n"
    )
    refused = await client.post("/api/v1/imports/readings", content=bad, headers=headers)
    assert refused.status_code == 422, refused.text
    paths = [p["path"] for p in refused.json()["error"]["details"]]
    assert paths == ["row 3.time", "row 5.register"]
    unknown = bad.replace(f"{block['meter']},yesterday,20\n", "").replace(",-1\n", ",21\n")
    refused = await client.post("/api/v1/imports/readings", content=unknown, headers=headers)
    assert refused.status_code == 422, refused.text
    assert [p["path"] for p in refused.json()["error"]["details"]] == ["row 3.serial"]
    assert await _counts(conn) == before


async def test_import_readings_cli(
    database_url: str, conn: asyncpg.Connection, block: dict[str, Any], tmp_path: Path
) -> None:
    """``balans import-readings FILE``: the same path; readings stored before are kept, a bad
    file exits 1 naming the row and writes nothing."""
    app = typer.Typer()
    register(app)
    good = tmp_path / "readings.csv"
    good.write_text(
        f"serial,time,register\n{block['meter']},2025-11-01T00:00:00+02:00,5\n", encoding="utf-8"
    )
    env = {"BALANS_DATABASE_URL": database_url}
    runner = CliRunner()
    first = await asyncio.to_thread(runner.invoke, app, ["import-readings", str(good)], env=env)
    assert first.exit_code == 0, first.output
    assert "1 received, 1 new" in first.output
    again = await asyncio.to_thread(runner.invoke, app, ["import-readings", str(good)], env=env)
    assert "1 received, 0 new" in again.output
    before = await _counts(conn)
    bad = tmp_path / "bad.csv"
    bad.write_text(f"serial,time,register\n{block['meter']},2025-11-02,x\n", encoding="utf-8")
    refused = await asyncio.to_thread(runner.invoke, app, ["import-readings", str(bad)], env=env)
    assert refused.exit_code == 1
    assert "row 2.register" in refused.output
    assert await _counts(conn) == before


async def test_csv_files_per_entity(
    client: httpx.AsyncClient, conn: asyncpg.Connection, block: dict[str, Any]
) -> None:
    """The building exported as CSV files imports back with nothing to change; a malformed
    archive is a 422 naming file and row, and writes nothing."""
    exported = await client.get("/api/v1/exports/csv", params={"building": "t-tenancy-1c"})
    assert exported.status_code == 200, exported.text
    archive = exported.content
    tables = tables_from_zip(archive)
    assert tables["accounts.csv"].startswith("building,number,flat,holder_name")
    job = await client.post(
        "/api/v1/imports/csv", content=archive, headers={"Content-Type": "application/zip"}
    )
    assert job.status_code == 202, job.text
    done = await _job(client, job.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["changes"] == {}

    before = await _counts(conn)
    meters = tables["meters.csv"].splitlines()
    meters[1] = meters[1].replace(",0.001000,", ",-1,").replace(",0.001,", ",-1,")
    tables["meters.csv"] = "\n".join(meters) + "\n"
    tables["risers.csv"] += "no-such-building,9,1\n"
    refused = await client.post(
        "/api/v1/imports/csv", content=_zip(tables), headers={"Content-Type": "application/zip"}
    )
    assert refused.status_code == 422, refused.text
    rows = tables["risers.csv"].count("\n")
    assert [p["path"] for p in refused.json()["error"]["details"]] == [
        f"risers.csv row {rows}.building"
    ]
    tables["risers.csv"] = "\n".join(tables["risers.csv"].splitlines()[:-1]) + "\n"
    refused = await client.post(
        "/api/v1/imports/csv", content=_zip(tables), headers={"Content-Type": "application/zip"}
    )
    assert refused.status_code == 422, refused.text
    assert [p["path"] for p in refused.json()["error"]["details"]] == [
        "meters.csv row 2.pulse_weight"
    ]
    assert await _counts(conn) == before
    # the methodology's rules take only their values
    tables = tables_from_zip(archive)
    tables["buildings.csv"] = tables["buildings.csv"].replace(
        ",{},", ',"{""vacant_flat"": ""tenant""}",'
    )
    refused = await client.post(
        "/api/v1/imports/csv", content=_zip(tables), headers={"Content-Type": "application/zip"}
    )
    assert refused.status_code == 422, refused.text
    assert [p["path"] for p in refused.json()["error"]["details"]] == [
        "buildings.csv row 2.methodology.vacant_flat"
    ]


def _zip(tables: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as out:
        for name, text in tables.items():
            out.writestr(name, text)
    return buffer.getvalue()
