"""What billing publishes: tariffs and invoices (tables in :mod:`balans_db.tables.billing`)."""

from __future__ import annotations

from datetime import datetime
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


async def invoiced_periods(db: Db, building_id: int, ending_after: datetime) -> list[Any]:
    """The building's invoiced periods (period_start, period_end) that end after
    ``ending_after``, oldest first: what a late change from then on must re-bill."""
    return await db.fetch(
        """select distinct period_start, period_end from invoices
           where building_id = $1 and period_end > $2 order by period_start""",
        building_id,
        ending_after,
    )
