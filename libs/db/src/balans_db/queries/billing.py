"""What billing publishes: tariffs and invoices (tables in :mod:`balans_db.tables.billing`)."""

from __future__ import annotations

from typing import Any

from balans_db.queries import Db

TARIFFS = "select id, utility, supplier, version, effective_from, effective_to, spec from tariffs"
"""A published select for paging: every tariff version."""

INVOICES = """select id, account_id, building_id, period_start, period_end, kind, corrects_id,
currency, total, issued_at, number, due_on from invoices"""
"""A published select for paging: every invoice and correction."""


async def invoice_lines(db: Db, invoice_id: int) -> list[Any]:
    """The invoice's lines (line_no, utility, code, description, quantity, unit,
    unit_price, amount) in order."""
    return await db.fetch(
        """select line_no, utility, code, description, quantity, unit, unit_price, amount
           from invoice_lines where invoice_id = $1 order by line_no""",
        invoice_id,
    )
