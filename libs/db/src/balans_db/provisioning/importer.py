"""Import a world document: check it, compare it with what is stored, write the
difference, all in one transaction (nothing half-written), serialised with every other
world change by an advisory lock. Importing the same document twice writes nothing the
second time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from balans_db.provisioning.apply import apply_changes, total_rows
from balans_db.provisioning.changes import Changes, compare, stored_rows
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.export import fetch_stored
from balans_db.provisioning.mbus import drop_unchanged_keys
from balans_db.provisioning.validation import InvalidDocumentError, Problem, check_document
from balans_db.secrets import KeyVault

# pg_advisory_xact_lock key of world changes ("balans world" in ASCII, truncated)
WORLD_LOCK = 0x62616C616E73


@dataclass
class ImportReport:
    """What an import changed (or, dry, would change)."""

    dry_run: bool
    changes: Changes
    keys: dict[int, bytes] = field(default_factory=dict)  # new concentrators' device keys
    building_ids: dict[str, int] = field(default_factory=dict)  # changed buildings

    @property
    def changed(self) -> bool:
        return not self.changes.empty


# key -> the building it is stored in, for city-wide keys of a document's buildings
_STORED_ELSEWHERE = {
    "accounts": """select a.number::text as key, b.code from accounts a
                   left join flats f on f.id = a.flat_id
                   join buildings b on b.id = coalesce(a.building_id, f.building_id)
                   where a.number = any($1::text[]) and b.code <> all($2::text[])""",
    "concentrators": """select c.serial::text as key, b.code from concentrators c
                        join buildings b on b.id = c.building_id
                        where c.serial = any($1::bigint[]) and b.code <> all($2::text[])""",
    "modules": """select m.serial::text as key, b.code from radio_modules m
                  join buildings b on b.id = m.building_id
                  where m.serial = any($1::bigint[]) and b.code <> all($2::text[])""",
    "meters": """select m.serial as key, b.code from meters m
                 join buildings b on b.id = m.building_id
                 where m.serial = any($1::text[]) and b.code <> all($2::text[])""",
}
_KEY_FIELD = {
    "accounts": "number",
    "concentrators": "serial",
    "modules": "serial",
    "meters": "serial",
}


async def stored_problems(conn: asyncpg.Connection, doc: WorldDocument) -> list[Problem]:
    """Problems only the database shows: unknown sites, and serials or account numbers
    that belong to a stored building outside the document (moving one between buildings
    needs both buildings in the document)."""
    codes = [b.code for b in doc.buildings]
    problems: list[Problem] = []
    wanted_sites = {b.site for b in doc.buildings} - {s.code for s in doc.sites}
    stored_sites = {
        r["code"]
        for r in await conn.fetch(
            "select code from sites where code = any($1::text[])", sorted(wanted_sites)
        )
    }
    for collection, sql in _STORED_ELSEWHERE.items():
        keys: list[Any] = []
        where: dict[str, str] = {}
        for i, b in enumerate(doc.buildings):
            for j, item in enumerate(getattr(b, collection)):
                key = getattr(item, _KEY_FIELD[collection])
                keys.append(key)
                where[str(key)] = f"buildings[{i}].{collection}[{j}].{_KEY_FIELD[collection]}"
        if not keys:
            continue
        for r in await conn.fetch(sql, keys, codes):
            problems.append(
                Problem(
                    where[r["key"]],
                    f"{r['key']} belongs to building {r['code']}, which is not in this "
                    "document; include both buildings to move it",
                )
            )
    return check_document(doc, stored_sites) + problems


async def import_document(
    conn: asyncpg.Connection,
    doc: WorldDocument,
    vault: KeyVault,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Check and import ``doc``; raise :class:`InvalidDocumentError` (nothing written) when it
    has problems. ``progress(done, total)`` follows the rows written."""
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        problems = await stored_problems(conn, doc)
        if problems:
            raise InvalidDocumentError(problems)
        stored = await fetch_stored(conn, [b.code for b in doc.buildings])
        old = stored_rows(*stored)
        changes = compare(old, doc)
        drop_unchanged_keys(changes, old, vault)
        report = ImportReport(dry_run, changes)
        if dry_run or changes.empty:
            return report
        total, done = total_rows(changes), 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        try:
            report.keys = await apply_changes(conn, changes, vault, step)
        except asyncpg.IntegrityConstraintViolationError as exc:
            # what the checks cannot see (e.g. a module input held by a meter of a
            # building outside the document): refused whole, like any other problem
            raise InvalidDocumentError([Problem("$", str(exc))]) from exc
        rows = await conn.fetch(
            "select code, id from buildings where code = any($1::text[])",
            sorted(changes.changed_buildings()),
        )
        report.building_ids = {r["code"]: r["id"] for r in rows}
        return report
