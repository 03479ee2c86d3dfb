"""Provisioning over the REST API: buildings created and edited item by item, every
change checked against the whole building (a refusal names each problem and writes
nothing), audited; imports as background jobs, idempotent, and export in the same
format."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import asyncpg
import httpx
import pytest

from balans_api.routes.provisioning import EXAMPLE_BUILDING

from .conftest import World, auth

pytestmark = pytest.mark.asyncio(loop_scope="session")

SITE = {
    "code": "example-site",
    "name": "Example",
    "address": "str. Exemplu 1",
    "latitude": 47.0,
    "longitude": 28.8,
}
BASE = "/api/v1/provisioning"


async def _counts(world: World) -> dict[str, int]:
    conn = await asyncpg.connect(world.database_url)
    try:
        return {
            t: await conn.fetchval(f"select count(*) from {t}")
            for t in ("buildings", "flats", "meters", "channels", "sensor_pairs", "accounts")
        }
    finally:
        await conn.close()


async def _job(client: httpx.AsyncClient, world: World, job_id: str) -> dict[str, Any]:
    async with asyncio.timeout(60):
        while True:
            job = await client.get(f"/api/v1/imports/{job_id}", headers=auth(world, "operator"))
            body: dict[str, Any] = job.json()
            if body["status"] in ("succeeded", "failed"):
                return body
            await asyncio.sleep(0.05)


async def test_only_operators_and_admins_provision(client: httpx.AsyncClient, world: World) -> None:
    for role in ("manager", "consumer"):
        response = await client.post(f"{BASE}/sites", json=SITE, headers=auth(world, role))
        assert response.status_code == 403, response.text
    response = await client.post("/api/v1/imports", json={}, headers=auth(world, "manager"))
    assert response.status_code == 403


async def test_building_lifecycle(client: httpx.AsyncClient, world: World) -> None:
    op = auth(world, "operator")
    assert (await client.post(f"{BASE}/sites", json=SITE, headers=op)).status_code == 201
    assert (await client.post(f"{BASE}/sites", json=SITE, headers=op)).status_code == 409
    created = await client.post(f"{BASE}/buildings", json=EXAMPLE_BUILDING, headers=op)
    assert created.status_code == 201, created.text
    keys = created.json()["concentrator_keys"]
    assert list(keys) == ["1000090"]
    assert len(bytes.fromhex(keys["1000090"])) == 32
    stored = (await client.get(f"{BASE}/buildings/example-1b", headers=op)).json()
    assert [f["number"] for f in stored["flats"]] == ["1", "2"]
    assert {m["serial"] for m in stored["meters"]} == {
        m["serial"] for m in EXAMPLE_BUILDING["meters"]
    }

    # a third flat without its flow meter and sensor pair: refused, every problem named
    flat = {"number": "3", "entrance": 1, "floor": 1, "rooms": 2, "area_m2": "50.00"}
    before = await _counts(world)
    refused = await client.post(f"{BASE}/buildings/example-1b/flats", json=flat, headers=op)
    assert refused.status_code == 422, refused.text
    problems = refused.json()["error"]["details"]
    assert {
        "path": "buildings[0].flats[2]",
        "message": "flat 3 needs a flow_meter (layout 1b)",
    } in problems
    assert {
        "path": "buildings[0].flats[2]",
        "message": "flat 3 needs a sensor pair (layout 1b)",
    } in problems
    assert await _counts(world) == before

    # with its module, meter and sensor pair it is accepted, one request at a time ...
    module = {"serial": 9_000_301, "concentrator": 1000090, "floor": 1, "flat": "3"}
    meter = {
        "serial": "flow-3",
        "utility": "heat",
        "kind": "flow_meter",
        "role": "flat",
        "flat": "3",
        "pulse_weight": "0.001",
        "unit": "m3",
        "pipe": "return",
        "channel": {"module": 9_000_301, "input": 0},
    }
    # ... except that the first of them leaves the building incomplete: send it whole
    building = copy.deepcopy(stored)
    building["flats"].append({**flat, "radiators": []})
    building["modules"].append(
        {**module, "subnet": 0, "model": "D100FC", "riser": None, "installed_on": None}
    )
    building["meters"].append(meter)
    building["sensor_pairs"].append(
        {"module": 9_000_301, "position": "flat", "flat": "3", "riser": None}
    )
    put = await client.put(f"{BASE}/buildings/example-1b", json=building, headers=op)
    assert put.status_code == 200, put.text
    assert put.json()["changes"]["meters"] == {"create": 1, "update": 0, "delete": 0}

    # change one meter's pulse weight, then an account
    meter["pulse_weight"] = "0.01"
    changed = await client.put(f"{BASE}/buildings/example-1b/meters/flow-3", json=meter, headers=op)
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == {"meters": {"create": 0, "update": 1, "delete": 0}}
    account = {"number": "example-3", "flat": "3", "holder_name": "New tenant", "residents": 3}
    added = await client.post(f"{BASE}/buildings/example-1b/accounts", json=account, headers=op)
    assert added.status_code == 201, added.text
    same = await client.post(f"{BASE}/buildings/example-1b/accounts", json=account, headers=op)
    assert same.status_code == 409

    # a flat meter naming a flat of no building: 422 with the path
    meter["flat"] = "99"
    wrong = await client.put(f"{BASE}/buildings/example-1b/meters/flow-3", json=meter, headers=op)
    assert wrong.status_code == 422
    assert {
        "path": "buildings[0].meters[4].flat",
        "message": "no flat '99' in building example-1b",
    } in (wrong.json()["error"]["details"])

    patch = await client.patch(
        f"{BASE}/buildings/example-1b", json={"name": "Renamed block"}, headers=op
    )
    assert patch.json()["changes"] == {"buildings": {"create": 0, "update": 1, "delete": 0}}
    busy = await client.delete(f"{BASE}/sites/example-site", headers=op)
    assert busy.status_code == 409, busy.text
    retired = await client.delete(f"{BASE}/buildings/example-1b", headers=op)
    assert retired.status_code == 200
    site = await client.delete(f"{BASE}/sites/example-site", headers=op)
    assert site.status_code == 200, site.text
    site_doc = (await client.get(f"{BASE}/sites/example-site", headers=op)).json()
    assert site_doc["retired_on"] is not None
    stored = (await client.get(f"{BASE}/buildings/example-1b", headers=op)).json()
    assert stored["name"] == "Renamed block"
    assert stored["retired_on"] is not None

    audit = await client.get("/api/v1/audit?limit=1000", headers=auth(world, "admin"))
    actions = [e["action"] for e in audit.json()["items"] if e["actor"] == "user:operator"]
    for action in (
        "site.create",
        "building.create",
        "building.replace",
        "meters.update",
        "accounts.create",
        "building.update",
        "building.retire",
    ):
        assert action in actions


async def test_import_twice_changes_nothing_and_export_round_trips(
    client: httpx.AsyncClient, world: World
) -> None:
    op = auth(world, "operator")
    exported = (await client.get("/api/v1/exports?building=demo-1c", headers=op)).json()
    doc = copy.deepcopy(exported)
    b = doc["buildings"][0]
    b["code"], b["name"] = "copy-1c", "Copy of demo-1c"
    suffix = "-copy"
    for a in b["accounts"]:
        a["number"] += suffix
    for c in b["concentrators"]:
        c["serial"] += 5_000_000
    for m in b["modules"]:
        m["serial"] += 50_000_000
        m["concentrator"] += 5_000_000
    for m in b["meters"]:
        m["serial"] += suffix
        m["channel"]["module"] += 50_000_000
    for p in b["sensor_pairs"]:
        p["module"] += 50_000_000
    dry = await client.post("/api/v1/imports?dry_run=true", json=doc, headers=op)
    assert dry.status_code == 202, dry.text
    dry_job = await _job(client, world, dry.json()["id"])
    assert dry_job["status"] == "succeeded"
    assert dry_job["result"]["changes"]["meters"]["create"] == len(b["meters"])
    assert "create building copy-1c" in dry_job["result"]["lines"]
    assert (await client.get(f"{BASE}/buildings/copy-1c", headers=op)).status_code == 404

    first = await _job(
        client, world, (await client.post("/api/v1/imports", json=doc, headers=op)).json()["id"]
    )
    assert first["status"] == "succeeded", first
    assert list(first["concentrator_keys"]) == [str(b["concentrators"][0]["serial"])]
    again = (await client.get(f"/api/v1/imports/{first['id']}", headers=op)).json()
    assert again["concentrator_keys"] is None  # shown once
    counts = await _counts(world)
    second = await _job(
        client, world, (await client.post("/api/v1/imports", json=doc, headers=op)).json()["id"]
    )
    assert second["status"] == "succeeded"
    assert second["result"]["changes"] == {}
    assert await _counts(world) == counts
    copied = (await client.get("/api/v1/exports?building=copy-1c", headers=op)).json()
    # the export is the imported document, dates filled in by the server
    assert copied["buildings"][0]["meters"][0]["serial"] == b["meters"][0]["serial"]
    reimport = await _job(
        client, world, (await client.post("/api/v1/imports", json=copied, headers=op)).json()["id"]
    )
    assert reimport["result"]["changes"] == {}


async def test_a_malformed_import_is_refused_with_every_problem(
    client: httpx.AsyncClient, world: World
) -> None:
    op = auth(world, "operator")
    doc = (await client.get("/api/v1/exports?building=demo-1a", headers=op)).json()
    b = doc["buildings"][0]
    b["name"] = "must not be stored"
    b["flats"][1]["area_m2"] = "0"
    b["meters"][2]["channel"]["input"] = 6
    b["meters"][3]["utility"] = "steam"
    before = await _counts(world)
    response = await client.post("/api/v1/imports", json=doc, headers=op)
    assert response.status_code == 422, response.text
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert {
        "buildings[0].flats[1].area_m2",
        "buildings[0].meters[2].channel.input",
        "buildings[0].meters[3].utility",
    } <= paths
    doc = (await client.get("/api/v1/exports?building=demo-1a", headers=op)).json()
    b = doc["buildings"][0]
    b["meters"][5]["channel"] = dict(b["meters"][4]["channel"])
    b["modules"].pop()
    response = await client.post("/api/v1/imports", json=doc, headers=op)
    assert response.status_code == 422, response.text
    messages = [d["message"] for d in response.json()["error"]["details"]]
    assert any("already counts meter" in m for m in messages)
    assert any(m.startswith("no module") for m in messages)
    response = await client.post("/api/v1/imports", content=b"{not json", headers=op)
    assert response.status_code == 422
    assert await _counts(world) == before
    stored = (await client.get(f"{BASE}/buildings/demo-1a", headers=op)).json()
    assert stored["name"] != "must not be stored"
