"""The Python API other parts call (the api service, the CLI). See docs/billing.md.

Functions taking ``conn`` run on the caller's asyncpg connection (the api service's
pool); the ``*_month``/``database_url`` variants open their own connection for the CLI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

import asyncpg

from balans_billing import render, storage
from balans_billing.demo import seed_demo_tariffs
from balans_billing.document import InvoiceDocument, load_document
from balans_billing.fairness import FairnessReport, FlatHeat, fairness_report
from balans_billing.invoicing import Issued, bill_building, tariff_in_force
from balans_billing.periods import first_day, month_bounds
from balans_billing.tariffs import TariffSpec
from balans_db.queries import allocation

Format = Literal["json", "csv", "html"]
RENDERERS: dict[str, Callable[[InvoiceDocument], str]] = {
    "json": render.to_json,
    "csv": render.to_csv,
    "html": render.to_html,
}
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv", "html": "text/html"}


@asynccontextmanager
async def _connect(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    try:
        yield conn
    finally:
        await conn.close()


async def add_tariff_json(database_url: str, text: str) -> int:
    """Validate a tariff document (JSON) and store it; pydantic.ValidationError or
    TariffConflictError when it is refused (nothing is written then)."""
    spec = TariffSpec.model_validate_json(text)
    async with _connect(database_url) as conn:
        return await storage.add_tariff(conn, spec)


async def seed_tariffs(database_url: str, effective_from: date) -> int:
    """Store the demo tariffs (heat at 1122 MDL/Gcal) where a utility has none."""
    async with _connect(database_url) as conn:
        return await seed_demo_tariffs(conn, effective_from)


async def month_period(
    conn: asyncpg.Connection, building_id: int, year: int, month: int
) -> tuple[datetime, datetime]:
    """[start, end) of a calendar month in the building's time zone."""
    return month_bounds(year, month, await storage.building_timezone(conn, building_id))


async def issue_month(database_url: str, building_id: int, month: tuple[int, int]) -> list[Issued]:
    """Issue (or correct) a building's invoices for a calendar month."""
    async with _connect(database_url) as conn:
        start, end = await month_period(conn, building_id, *month)
        return await bill_building(conn, building_id, start, end)


async def invoice_document(conn: asyncpg.Connection, invoice_id: int) -> InvoiceDocument:
    """The invoice as a document (LookupError when there is none)."""
    return await load_document(conn, invoice_id)


async def render_invoice(database_url: str, invoice_id: int, fmt: Format) -> str:
    """An invoice as JSON, CSV or printable HTML (Romanian)."""
    async with _connect(database_url) as conn:
        return RENDERERS[fmt](await load_document(conn, invoice_id))


async def invoice_page(
    database_url: str, invoice_id: int, locale: str, pdf: bool = False
) -> str | bytes:
    """The invoice's printable page in a language, or its PDF."""
    async with _connect(database_url) as conn:
        doc = await load_document(conn, invoice_id)
    return render.to_pdf(doc, locale) if pdf else render.to_html(doc, locale)


async def fairness(
    conn: asyncpg.Connection,
    building_id: int,
    start: datetime,
    end: datetime,
    price_per_gcal: Decimal | None = None,
) -> FairnessReport:
    """Area-based versus metered heat bills of the building's flats over [start, end).

    Without ``price_per_gcal`` the heat tariff in force is used, which must then have a
    single consumption block (a progressive tariff has no one price to compare with).
    """
    rows = await allocation.flats_heat(conn, building_id, start, end)
    if price_per_gcal is None:
        price_per_gcal = await _single_heat_price(conn, building_id, start)
    flats = [
        FlatHeat(flat_id=r["id"], number=r["number"], area_m2=r["area_m2"], heat_kwh=r["kwh"])
        for r in rows
    ]
    return fairness_report(flats, price_per_gcal)


async def _single_heat_price(
    conn: asyncpg.Connection, building_id: int, start: datetime
) -> Decimal:
    supplier = (await storage.suppliers_of(conn, building_id))["heat"]
    day = first_day(start, await storage.building_timezone(conn, building_id))
    tariff = tariff_in_force(
        await storage.load_tariffs(conn, "heat", supplier), day, "heat", supplier
    )
    if tariff.unit != "Gcal" or len(tariff.blocks) != 1:
        raise ValueError("the heat tariff is progressive or not in Gcal: pass price_per_gcal")
    return tariff.blocks[0].price


async def fairness_for_month(
    database_url: str, building_id: int, month: tuple[int, int]
) -> FairnessReport:
    """The fairness report of a calendar month."""
    async with _connect(database_url) as conn:
        start, end = await month_period(conn, building_id, *month)
        return await fairness(conn, building_id, start, end)
