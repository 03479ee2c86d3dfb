"""Tariffs and invoices (billing's tables): consumers see their own account's invoices."""

from __future__ import annotations

from fastapi import APIRouter

from balans_api.deps import Pool, Reader
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.models import InvoiceDetail, InvoiceLinePublic, InvoicePublic, TariffPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_db.queries import billing

router = APIRouter(tags=["billing"], responses=ERROR_RESPONSES)


@router.get("/tariffs", response_model=Page[TariffPublic])
async def list_tariffs(
    pool: Pool, _: Reader, utility: str | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """Tariff versions as billing defines them (blocks, fixed, capacity, operations)."""
    rows, nxt = await fetch_page(
        pool, billing.TARIFFS, Where().add("utility = {}", utility), cursor, limit
    )
    return Page(items=[TariffPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/invoices", response_model=Page[InvoicePublic])
async def list_invoices(
    pool: Pool,
    who: Reader,
    account_id: int | None = None,
    building_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Invoices and corrections per account and period; amounts are decimal strings."""
    where = (
        Where()
        .add("account_id = {}", account_id)
        .add("building_id = {}", building_id)
        .add("account_id = {}", who.account_id if who.is_consumer else None)
    )
    rows, nxt = await fetch_page(pool, billing.INVOICES, where, cursor, limit)
    return Page(items=[InvoicePublic(**r) for r in rows], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", response_model=InvoiceDetail)
async def get_invoice(invoice_id: int, pool: Pool, who: Reader) -> InvoiceDetail:
    """One invoice with its lines."""
    row = await pool.fetchrow(f"{billing.INVOICES} where id = $1", invoice_id)
    if row is None or (who.is_consumer and row["account_id"] != who.account_id):
        raise not_found("invoice")
    lines = await billing.invoice_lines(pool, invoice_id)
    return InvoiceDetail(**row, lines=[InvoiceLinePublic(**line) for line in lines])
