"""A meter's M-Bus address in the world document: registered, exported without its key,
re-imported unchanged, its key replaced, kept across an address change or removed, and
the virtual module gone with the meter."""

from __future__ import annotations

import copy
import json
from typing import Any

import asyncpg

from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.mbus import key_context, virtual_module_serial
from balans_db.provisioning.validation import check_document, parse_document
from balans_db.secrets import KeyVault

VAULT = KeyVault()
K1, K2 = bytes(range(16)), bytes(range(16, 32))


def _document(**water: Any) -> dict[str, Any]:
    """A 1a block of one flat whose building heat meter and flat water meter are M-Bus."""
    mbus_water = {"manufacturer": "KAM", "id": "41000001", "medium": "cold_water", **water}
    return {
        "format": "balans.world/1",
        "sites": [{"code": "mb-site", "name": "s", "address": "a", "latitude": 47.0,
                   "longitude": 28.8}],
        "buildings": [{
            "code": "mb-doc", "site": "mb-site", "name": "n", "address": "a", "floors": 1,
            "layout": "1a", "entrances": [{"number": 1}],
            "flats": [{"number": "1", "entrance": 1, "floor": 1, "rooms": 1, "area_m2": "40"}],
            "concentrators": [{"serial": 4_100_000}],
            "modules": [{"serial": 4_100_001, "concentrator": 4_100_000, "floor": 1, "flat": "1"}],
            "meters": [
                {"serial": "mb-heat-b", "utility": "heat", "kind": "heat_meter",
                 "role": "building", "pulse_weight": "0.001", "unit": "kWh",
                 "mbus": {"manufacturer": "KAM", "id": "41000000", "medium": "heat"}},
                {"serial": "mb-heat-1", "utility": "heat", "kind": "heat_meter", "role": "flat",
                 "flat": "1", "pulse_weight": "1", "unit": "kWh",
                 "channel": {"module": 4_100_001, "input": 0}},
                {"serial": "mb-water-1", "utility": "cold_water", "kind": "water_meter",
                 "role": "flat", "flat": "1", "pulse_weight": "0.001", "unit": "m3",
                 "mbus": mbus_water},
            ],
        }],
    }  # fmt: skip


async def _import(conn: asyncpg.Connection, doc: dict[str, Any]) -> dict[str, Any]:
    report = await import_document(conn, parse_document(doc), VAULT)
    return report.changes.counts()


async def _water(conn: asyncpg.Connection) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """select mm.manufacturer, mm.device_id, mm.module_serial, mm.key_ciphertext, mm.medium
           from mbus_meters mm join meters mt on mt.id = mm.meter_id
           where mt.serial = 'mb-water-1'"""
    )


def _key(row: asyncpg.Record) -> bytes:
    return VAULT.open(
        row["key_ciphertext"], context=key_context(row["manufacturer"], row["device_id"])
    )


async def test_an_address_through_its_lifecycle(conn: asyncpg.Connection) -> None:
    await _import(conn, _document(key=K1.hex()))
    water = await _water(conn)
    assert water is not None
    assert water["module_serial"] == virtual_module_serial("KAM", "41000001")
    assert water["medium"] == 0x16
    assert _key(water) == K1
    heat_module = virtual_module_serial("KAM", "41000000")
    assert await conn.fetchval(
        "select count(*) from sensor_pairs where module_serial = $1", heat_module
    )  # a heat meter's temperatures

    exported = json.loads((await export_document(conn, ["mb-doc"])).model_dump_json())
    meters = {m["serial"]: m for m in exported["buildings"][0]["meters"]}
    assert meters["mb-water-1"]["mbus"]["key"] is None  # never shown again
    assert meters["mb-water-1"]["channel"] is None
    assert [m["serial"] for m in exported["buildings"][0]["modules"]] == [4_100_001]
    assert exported["buildings"][0]["sensor_pairs"] == []
    assert await _import(conn, exported) == {}  # the export re-imports unchanged, key kept
    assert _key(await _water(conn)) == K1

    # a new key replaces the old one in place
    assert await _import(conn, _document(key=K2.hex())) == {
        "mbus_meters": {"create": 0, "update": 1, "delete": 0}
    }
    assert _key(await _water(conn)) == K2
    assert await _import(conn, _document(key=K2.hex())) == {}  # the same key again: nothing

    # another address (the same meter re-addressed), key left out: a new virtual module,
    # the key kept (sealed again for the new address)
    await _import(conn, _document(id="41000009"))
    water = await _water(conn)
    assert water["module_serial"] == virtual_module_serial("KAM", "41000009")
    assert _key(water) == K2
    gone = virtual_module_serial("KAM", "41000001")
    assert await conn.fetchval("select count(*) from radio_modules where serial = $1", gone) == 0

    await _import(conn, _document(id="41000009", key=""))
    assert (await _water(conn))["key_ciphertext"] is None
    assert await _import(conn, _document(id="41000009", key="")) == {}

    # the meter removed: its virtual module and address go with it
    without = _document()
    without["buildings"][0]["meters"].pop()
    await _import(conn, without)
    assert await _water(conn) is None
    assert (
        await conn.fetchval(
            "select count(*) from radio_modules where serial = $1",
            virtual_module_serial("KAM", "41000009"),
        )
        == 0
    )


def test_an_address_names_one_meter_and_needs_a_concentrator() -> None:
    doc = _document()
    building = doc["buildings"][0]
    twin = copy.deepcopy(building["meters"][2])
    twin["serial"] = "mb-water-2"
    twin["mbus"]["id"] = "41000001"
    building["meters"].append(twin)
    building["concentrators"] = []
    building["modules"] = []
    building["meters"][1].pop("channel")
    problems = {(p.path, p.message) for p in check_document(parse_document(doc))}
    assert (
        "buildings[0].meters[3].mbus",
        "M-Bus address KAM 41000001 also at buildings[0].meters[2].mbus",
    ) in problems
    assert (
        "buildings[0].meters[0].mbus",
        "building mb-doc has no concentrator to forward its telegrams",
    ) in problems
