"""The world document: what the topology writer stores is what its document describes,
import(export(x)) == x, importing twice changes nothing, and a bad document is refused
whole with every problem named."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.validation import (
    InvalidDocumentError,
    check_document,
    parse_document,
)
from balans_db.secrets import KeyVault
from balans_db.topology import city_document, demo_city, write_building

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _json(doc: WorldDocument) -> Any:
    return json.loads(doc.model_dump_json())


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    tables = (
        "sites",
        "buildings",
        "flats",
        "radiators",
        "accounts",
        "concentrators",
        "radio_modules",
        "meters",
        "channels",
        "sensor_pairs",
    )
    return {t: await conn.fetchval(f"select count(*) from {t}") for t in tables}


async def test_the_writer_stores_what_its_document_describes(conn: asyncpg.Connection) -> None:
    """The demo city written by write_building, then imported from city_document: the
    import finds nothing to change, and every building passes the checks."""
    city = demo_city()
    for spec in city:
        assert await write_building(conn, spec, KeyVault()) is not None
    doc = parse_document(city_document(city))
    assert check_document(doc) == []
    report = await import_document(conn, doc, KeyVault())
    assert not report.changed, report.changes.lines(20)
    assert check_document(await export_document(conn)) == []


async def test_import_of_export_is_identity_and_twice_changes_nothing(
    conn: asyncpg.Connection,
) -> None:
    exported = await export_document(conn)
    before = _json(exported)
    await conn.execute("delete from sites")
    assert (await _counts(conn))["meters"] == 0
    first = await import_document(conn, parse_document(before), KeyVault())
    assert first.changed
    assert sorted(first.keys) == sorted(
        c["serial"] for b in before["buildings"] for c in b["concentrators"]
    )
    assert _json(await export_document(conn)) == before
    counts = await _counts(conn)
    second = await import_document(conn, parse_document(before), KeyVault())
    assert not second.changed
    assert second.keys == {}
    assert await _counts(conn) == counts


async def test_changes_are_applied_by_natural_keys(conn: asyncpg.Connection) -> None:
    doc = _json(await export_document(conn, ["demo-1a"]))
    b = doc["buildings"][0]
    gone = b["flats"].pop()["number"]
    b["accounts"] = [a for a in b["accounts"] if a["flat"] != gone]
    dropped = [m["serial"] for m in b["meters"] if m["flat"] == gone]
    b["meters"] = [m for m in b["meters"] if m["flat"] != gone]
    b["modules"] = [m for m in b["modules"] if m["flat"] != gone]
    b["sensor_pairs"] = [p for p in b["sensor_pairs"] if p["flat"] != gone]
    b["flats"][0]["area_m2"] = "99.90"
    dry = await import_document(conn, parse_document(doc), KeyVault(), dry_run=True)
    assert dry.changes.counts()["flats"] == {"create": 0, "update": 1, "delete": 1}
    assert await conn.fetchval("select count(*) from meters where serial = any($1)", dropped)
    report = await import_document(conn, parse_document(doc), KeyVault())
    assert report.changes.counts() == dry.changes.counts()
    assert not await conn.fetchval("select count(*) from meters where serial = any($1)", dropped)
    assert _json(await export_document(conn, ["demo-1a"])) == doc


async def test_a_bad_document_is_refused_whole(conn: asyncpg.Connection) -> None:
    doc = _json(await export_document(conn, ["demo-2b"]))
    before = await _counts(conn)
    b = doc["buildings"][0]
    b["name"] = "renamed"  # a good change that must not land either
    b["meters"][0]["channel"]["input"] = 9
    b["flats"][0]["area_m2"] = "-3"
    with pytest.raises(InvalidDocumentError) as schema:
        parse_document(doc)
    paths = {p.path for p in schema.value.problems}
    assert {"buildings[0].meters[0].channel.input", "buildings[0].flats[0].area_m2"} <= paths
    doc = _json(await export_document(conn, ["demo-2b"]))
    b = doc["buildings"][0]
    b["meters"] = [m for m in b["meters"] if m["role"] != "riser"][:]
    b["accounts"][0]["flat"] = "no-such-flat"
    b["modules"].append({**b["modules"][0]})
    with pytest.raises(InvalidDocumentError) as refused:
        await import_document(conn, parse_document(doc), KeyVault())
    messages = {(p.path, p.message) for p in refused.value.problems}
    assert ("buildings[0].accounts[0].flat", "no flat 'no-such-flat' in building demo-2b") in (
        messages
    )
    assert any("needs a riser flow meter" in m for _, m in messages)
    assert any(p.endswith(f"modules[{len(b['modules']) - 1}].serial") for p, _ in messages)
    assert await _counts(conn) == before
