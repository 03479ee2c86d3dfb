"""``balans import FILE`` and ``balans export``: the world document from the command line
(docs/provisioning.md). Uses BALANS_DATABASE_URL and BALANS_MASTER_KEY. The changed
buildings are announced through the api's outbox, written with the import: the running
api sends them to balance (no NATS needed here)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import asyncpg
import typer

from balans_api.provisioning import announce, keys_hex
from balans_api.register_readings import announce_readings
from balans_api.settings import ApiSettings
from balans_db.provisioning.csv_tables import (
    Origin,
    parse_tables,
    row_problems,
    tables_from_zip,
    to_zip,
)
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import ImportReport, import_document
from balans_db.provisioning.readings import ReadingsReport, parse_csv, store_readings
from balans_db.provisioning.validation import InvalidDocumentError, parse_document
from balans_db.secrets import KeyVault


def _refuse(exc: InvalidDocumentError) -> None:
    typer.echo(f"refused, nothing written: {len(exc.problems)} problem(s)", err=True)
    for p in exc.problems:
        typer.echo(f"  {p.path}: {p.message}", err=True)
    raise typer.Exit(1)


async def _import(settings: ApiSettings, doc: WorldDocument, dry_run: bool) -> ImportReport:
    conn = await asyncpg.connect(settings.database_url)
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = typer.progressbar(length=total, label="importing", file=sys.stderr)
            bar.__enter__()
        bar.update(done - bar.pos)

    try:
        async with conn.transaction():
            report = await import_document(
                conn,
                doc,
                KeyVault.from_hex(settings.master_key),
                dry_run=dry_run,
                progress=progress,
            )
            await announce(conn, report)
            return report
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
        await conn.close()


def import_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="A world document, or a zip of CSV files."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print what would change, write nothing."
    ),
) -> None:
    """Import a building or a city (idempotent: importing it again changes nothing)."""
    settings = ApiSettings()
    origin: Origin = {}
    try:
        if file.suffix == ".zip":  # CSV files per entity (docs/provisioning.md)
            doc, origin = parse_tables(tables_from_zip(file.read_bytes()))
        else:
            doc = parse_document(file.read_bytes())
        report = asyncio.run(_import(settings, doc, dry_run))
    except InvalidDocumentError as exc:
        _refuse(InvalidDocumentError(row_problems(exc.problems, origin)))
        return
    if dry_run:
        for line in report.changes.lines():
            typer.echo(line)
    for entity, counts in report.changes.counts().items():
        typer.echo(f"{entity}: " + ", ".join(f"{n} {verb}" for verb, n in counts.items() if n))
    if not report.changed:
        typer.echo("nothing to change")
        return
    if dry_run:
        typer.echo("dry run: nothing written")
        return
    for serial, key in keys_hex(report.keys).items():
        typer.echo(f"concentrator {serial} key {key}  (shown once: configure the device now)")


def export_command(
    building: list[str] = typer.Option(None, "--building", help="A building code (repeat)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="File (default: stdout); *.zip: CSV files per entity."
    ),
) -> None:
    """Write stored buildings (default: all) as one world document."""

    async def run() -> WorldDocument:
        conn = await asyncpg.connect(ApiSettings().database_url)
        try:
            return await export_document(conn, building or None)
        finally:
            await conn.close()

    doc = asyncio.run(run())
    if output is not None and output.suffix == ".zip":  # CSV files per entity
        output.write_bytes(to_zip(doc))
    elif output is None:
        typer.echo(doc.model_dump_json(indent=1))
    else:
        output.write_text(doc.model_dump_json(indent=1) + "\n", encoding="utf-8")


async def _import_readings(settings: ApiSettings, text: str) -> ReadingsReport:
    conn = await asyncpg.connect(settings.database_url)
    try:
        async with conn.transaction():
            report = await store_readings(conn, parse_csv(text))
            await announce_readings(conn, report)
            return report
    finally:
        await conn.close()


def import_readings_command(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, help="CSV: serial,time,register (docs/provisioning.md)."
    ),
) -> None:
    """Import historical register readings (idempotent: a reading stored before is kept)."""
    try:
        report = asyncio.run(_import_readings(ApiSettings(), file.read_text(encoding="utf-8-sig")))
    except InvalidDocumentError as exc:
        _refuse(exc)
        return
    typer.echo(f"readings: {report.received} received, {report.inserted} new")
