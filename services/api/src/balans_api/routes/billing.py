"""Tariffs and invoices (billing's tables): consumers see their own account's invoices."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from balans_api.deps import Pool, Reader
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page

router = APIRouter(tags=["billing"], responses=ERROR_RESPONSES)

Row = dict[str, Any]


@router.get("/tariffs", response_model=Page[Row])
async def list_tariffs(pool: Pool, _: Reader, cursor: Cursor = None, limit: Limit = 100) -> Page:
    """Tariffs as billing defines them (blocks, fixed, capacity and operations charges)."""
    rows, nxt = await fetch_page(pool, "select * from tariffs", Where(), cursor, limit)
    return Page(items=[dict(r) for r in rows], next_cursor=nxt)


@router.get("/invoices", response_model=Page[Row])
async def list_invoices(
    pool: Pool,
    who: Reader,
    account_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Invoices per account and period; amounts are decimal strings in MDL."""
    where = (
        Where()
        .add("account_id = {}", account_id)
        .add("account_id = {}", who.account_id if who.is_consumer else None)
    )
    rows, nxt = await fetch_page(pool, "select * from invoices", where, cursor, limit)
    return Page(items=[dict(r) for r in rows], next_cursor=nxt)


@router.get("/invoices/{invoice_id}", response_model=Row)
async def get_invoice(invoice_id: int, pool: Pool, who: Reader) -> Row:
    """One invoice with its lines."""
    row = await pool.fetchrow("select * from invoices where id = $1", invoice_id)
    if row is None or (who.is_consumer and row["account_id"] != who.account_id):
        raise not_found("invoice")
    lines = await pool.fetch(
        "select * from invoice_lines where invoice_id = $1 order by id", invoice_id
    )
    return {**dict(row), "lines": [dict(line) for line in lines]}
