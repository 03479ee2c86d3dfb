"""`balans billing ...` against a real database: seed tariffs, issue, show, fairness."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest
import typer
from pypdf import PdfReader
from typer.testing import CliRunner

from balans_billing.cli import register
from balans_billing.periods import month_bounds
from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building

SITE = SiteSpec(code="t-billing-cli", name="Cli", address="str. Cli 3", latitude=47, longitude=29)


async def _building(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        spec = regular_building(
            code="t-bill-cli",
            name="CLI block",
            address="str. Cli 3",
            site=SITE,
            layout="2a",
            floors=2,
            flats_per_floor=(2,),
            risers_per_entrance=(2,),
            index=73,
            multi_utility_every=1000,
        )
        bid = await write_building(conn, spec, KeyVault())
        assert bid is not None
        start, _ = month_bounds(2026, 3, "Europe/Chisinau")
        await conn.execute(
            """insert into heat_allocation (building_id, flat_id, hour, measured_kwh, total_kwh,
                   common_kwh, method)
               select $1, f.id, $2::timestamptz, 1163 * (f.id % 3), 1163 * (f.id % 3), 0, 'cli'
               from flats f where f.building_id = $1""",
            bid,
            start,
        )
        return bid
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def cli(database_url: str, monkeypatch_module: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch_module.setenv("BALANS_DATABASE_URL", database_url)
    return CliRunner()


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_issue_show_and_fairness(cli: CliRunner, database_url: str, tmp_path: Path) -> None:
    """Seeded tariffs, March issued (4 invoices), one shown as CSV, the fairness report."""
    bid = asyncio.run(_building(database_url))
    seeded = cli.invoke(_app(), ["billing", "seed-tariffs", "--from", "2026-01-01"])
    assert seeded.exit_code == 0, seeded.output
    assert "5 demo tariff(s) stored" in seeded.output
    issued = cli.invoke(_app(), ["billing", "issue", "--building", str(bid), "--month", "2026-03"])
    assert issued.exit_code == 0, issued.output
    assert "4 written" in issued.output
    invoice_id = issued.output.split()[1]
    shown = cli.invoke(_app(), ["billing", "show", invoice_id, "--format", "csv"])
    assert shown.exit_code == 0, shown.output
    rows = list(csv.DictReader(io.StringIO(shown.output)))
    assert {r["code"] for r in rows} >= {"operations"}
    # each 2a flat has one radiator per riser it passes: operations = 25 x its points
    ops = next(r for r in rows if r["code"] == "operations")
    assert Decimal(ops["amount"]) == 25 * Decimal(ops["quantity"])
    page = cli.invoke(_app(), ["billing", "show", invoice_id, "--format", "html", "--locale", "ru"])
    assert page.exit_code == 0, page.output
    assert "Итого к оплате" in page.output
    pdf = tmp_path / "invoice.pdf"
    written = cli.invoke(_app(), ["billing", "show", invoice_id, "--pdf", str(pdf)])
    assert written.exit_code == 0, written.output
    assert "Total de plată" in " ".join(p.extract_text() for p in PdfReader(pdf).pages)
    fair = cli.invoke(_app(), ["billing", "fairness", "--building", str(bid), "--month", "2026-03"])
    assert fair.exit_code == 0, fair.output
    report = json.loads(fair.output)
    assert len(report["flats"]) == 4
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "utility": "gas",
                "unit": "m3",
                "effective_from": "2026-01-01",
                "blocks": [{"from_qty": 0, "to_qty": 5, "price": 1}],
            }
        )
    )
    refused = cli.invoke(_app(), ["billing", "tariff-add", str(bad)])
    assert refused.exit_code == 2
    assert "refused, nothing written" in refused.output
    assert "last block must be unbounded" in refused.output
