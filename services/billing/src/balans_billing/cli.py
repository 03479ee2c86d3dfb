"""``balans estimate`` and ``balans billing ...`` (entry-point group ``balans.cli``)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Literal, NoReturn

import typer
from pydantic import ValidationError

from balans_billing.api import (
    Format,
    add_tariff_json,
    fairness_for_month,
    invoice_page,
    issue_month,
    render_invoice,
    seed_tariffs,
)
from balans_billing.demo import DEMO_TARIFFS_FROM
from balans_billing.invoicing import REFUSALS
from balans_billing.settings import BillingSettings
from balans_billing.storage import TariffConflictError
from balans_pricing.estimate_report import build_report, render_text
from balans_pricing.estimator import Building, Heating, Prices

PRICES = Prices()
HEATING = Heating()

billing_app = typer.Typer(help="Tariffs, invoices and the fairness report (BALANS_DATABASE_URL).")


def estimate_command(
    flats: int = typer.Option(100, min=1, help="Flats in the block."),
    entrances: int = typer.Option(3, min=1, help="Entrances (stairwells)."),
    floors: int = typer.Option(10, min=1, help="Floors."),
    risers: int = typer.Option(34, min=1, help="Heating risers."),
    radiators: int | None = typer.Option(None, min=1, help="Radiators (default risers x floors)."),
    module_inputs: int = typer.Option(4, min=1, max=6, help="Inputs used per shared D100FC."),
    price_d100fc: Decimal = typer.Option(PRICES.d100fc, help="MDL per D100FC."),
    price_heat_meter: Decimal = typer.Option(PRICES.heat_meter, help="MDL per heat meter."),
    price_pulse_meter: Decimal = typer.Option(
        PRICES.pulse_meter, help="MDL per pulse-output meter."
    ),
    price_dti2: Decimal = typer.Option(PRICES.dti2, help="MDL per DTI2 sensor."),
    price_concentrator: Decimal = typer.Option(PRICES.concentrator, help="MDL per J100G."),
    tariff: Decimal = typer.Option(HEATING.tariff_per_gcal, help="Heat tariff, MDL per Gcal."),
    season_months: Decimal = typer.Option(
        HEATING.season_months, help="Months in a heating season."
    ),
    saving: Decimal = typer.Option(Decimal("0.4"), help="Expected saving (0.4 = 40 %)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Equipment cost of the five metering variants and their payback in heating seasons."""
    report = build_report(
        Building(
            flats=flats,
            entrances=entrances,
            floors=floors,
            risers=risers,
            radiators=radiators,
            module_inputs=module_inputs,
        ),
        Prices(
            d100fc=price_d100fc,
            heat_meter=price_heat_meter,
            pulse_meter=price_pulse_meter,
            dti2=price_dti2,
            concentrator=price_concentrator,
        ),
        Heating(tariff_per_gcal=tariff, season_months=season_months),
        saving,
    )
    typer.echo(report.model_dump_json(indent=2) if as_json else render_text(report))


@billing_app.command("tariff-add")
def tariff_add_command(
    path: Path = typer.Argument(..., exists=True, help="Tariff JSON file."),
) -> None:
    """Validate a tariff document and store it as the next version of its utility."""
    try:
        tariff_id = asyncio.run(add_tariff_json(_database_url(), path.read_text()))
    except (ValidationError, TariffConflictError) as exc:
        _refuse(exc)
    typer.echo(f"tariff stored with id {tariff_id}")


@billing_app.command("seed-tariffs")
def seed_tariffs_command(
    effective_from: datetime = typer.Option(
        DEMO_TARIFFS_FROM.isoformat(),
        "--from",
        formats=["%Y-%m-%d"],
        help="First day the tariffs apply.",
    ),
) -> None:
    """Store demo tariffs for every utility that has none (heat at 1122 MDL/Gcal)."""
    added = asyncio.run(seed_tariffs(_database_url(), effective_from.date()))
    typer.echo(f"{added} demo tariff(s) stored")


@billing_app.command("issue")
def issue_command(
    building: int = typer.Option(..., help="Building id."),
    month: str = typer.Option(..., help="Billing month, YYYY-MM (local time of the building)."),
) -> None:
    """Issue the month's invoices (or corrections after late data) for a building."""
    try:
        issued = asyncio.run(issue_month(_database_url(), building, _month(month)))
    except REFUSALS as exc:
        _refuse(exc)
    for item in issued:
        typer.echo(f"{item.kind} {item.invoice_id} account {item.account_id}: {item.total} MDL")
    typer.echo(f"{len(issued)} written")


Locale = Literal["ro", "ru", "en"]


@billing_app.command("show")
def show_command(
    invoice_id: int = typer.Argument(..., help="Invoice id."),
    fmt: Format = typer.Option("json", "--format", help="json, csv or html."),
    locale: Locale | None = typer.Option(None, "--locale", help="html in ro, ru or en."),
    pdf: Path | None = typer.Option(None, "--pdf", help="Write the A4 PDF to this file."),
) -> None:
    """Print an invoice as JSON, CSV or printable HTML; or write its PDF."""
    if pdf is not None:
        content = asyncio.run(invoice_page(_database_url(), invoice_id, locale or "ro", True))
        assert isinstance(content, bytes)
        pdf.write_bytes(content)
        typer.echo(f"written {pdf} ({len(content)} bytes)")
    elif locale is not None and fmt == "html":
        typer.echo(asyncio.run(invoice_page(_database_url(), invoice_id, locale)))
    else:
        typer.echo(asyncio.run(render_invoice(_database_url(), invoice_id, fmt)))


@billing_app.command("fairness")
def fairness_command(
    building: int = typer.Option(..., help="Building id."),
    month: str = typer.Option(..., help="Month, YYYY-MM."),
) -> None:
    """Area-based versus metered heat bills of every flat, and the winners and losers."""
    report = asyncio.run(fairness_for_month(_database_url(), building, _month(month)))
    typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))


def _refuse(exc: Exception) -> NoReturn:
    """Print why nothing was written and exit with status 2."""
    typer.echo(f"refused, nothing written: {exc}", err=True)
    raise typer.Exit(2)


def _month(text: str) -> tuple[int, int]:
    try:
        parsed = datetime.strptime(text, "%Y-%m")
    except ValueError as exc:
        raise typer.BadParameter(f"month must be YYYY-MM, got {text!r}") from exc
    return parsed.year, parsed.month


def _database_url() -> str:
    return BillingSettings().database_url


def register(app: typer.Typer) -> None:
    """Entry point of the ``balans.cli`` group."""
    app.command("estimate")(estimate_command)
    app.add_typer(billing_app, name="billing")
