"""``balans import FILE [--dry-run]`` and ``balans export``: a dry run prints the changes
and writes nothing, an import writes them and shows each new concentrator key, a second
import finds nothing to change, a bad file is refused naming each problem, and the export
reads back the same document."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from balans_api.cli import register
from balans_db.topology import SiteSpec, city_document, regular_building

SPEC = regular_building(
    code="cli-2b",
    name="CLI block",
    address="str. CLI 1",
    site=SiteSpec("cli-site", "CLI", "str. CLI 1", 47.0, 28.9),
    layout="2b",
    floors=3,
    flats_per_floor=(2, 2),
    risers_per_entrance=(2, 2),
    index=55,
)


@pytest.fixture(scope="module")
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _count(url: str, table: str) -> int:
    async def fetch() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval(f"select count(*) from {table}"))
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_import_dry_run_import_again_and_export(
    cli: typer.Typer, database_url: str, tmp_path: Path
) -> None:
    runner = CliRunner(env={"BALANS_DATABASE_URL": database_url})
    file = tmp_path / "city.json"
    file.write_text(json.dumps(city_document([SPEC])))

    dry = runner.invoke(cli, ["import", str(file), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "create building cli-2b" in dry.output
    assert "dry run: nothing written" in dry.output
    assert _count(database_url, "buildings") == 0

    first = runner.invoke(cli, ["import", str(file)])
    assert first.exit_code == 0, first.output
    assert f"concentrator {SPEC.concentrator_serial} key " in first.output
    meters = _count(database_url, "meters")
    assert meters > 0
    assert _count(database_url, "api_outbox") == 1  # TopologyChanged, for the api to send

    again = runner.invoke(cli, ["import", str(file)])
    assert again.exit_code == 0, again.output
    assert "nothing to change" in again.output
    assert _count(database_url, "meters") == meters
    assert _count(database_url, "api_outbox") == 1

    out = tmp_path / "export.json"
    exported = runner.invoke(cli, ["export", "--building", "cli-2b", "-o", str(out)])
    assert exported.exit_code == 0, exported.output
    reimport = runner.invoke(cli, ["import", str(out)])
    assert "nothing to change" in reimport.output

    doc = json.loads(out.read_text())
    doc["buildings"][0]["meters"] = [
        m for m in doc["buildings"][0]["meters"] if m["role"] != "riser"
    ]
    doc["buildings"][0]["flats"][0]["entrance"] = 9
    file.write_text(json.dumps(doc))
    bad = runner.invoke(cli, ["import", str(file)])
    assert bad.exit_code == 1
    assert "buildings[0].flats[0].entrance: no entrance 9" in bad.output
    assert "buildings[0].risers[0]: single-pipe riser 1 needs a riser flow meter" in bad.output
    assert _count(database_url, "meters") == meters
