"""An invoice as the consumer and integrators see it: one pydantic model for every export."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel, ConfigDict

from balans_billing import storage
from balans_billing.charges import Line
from balans_db.queries import world


class InvoiceDocument(BaseModel):
    """An invoice or correction with who, where and when; ``total`` = sum of line amounts."""

    model_config = ConfigDict(frozen=True)

    invoice_id: int
    kind: str
    corrects_id: int | None
    account_number: str
    holder_name: str
    flat_number: str
    building_name: str
    building_address: str
    period_first_day: date
    period_last_day: date
    issued_at: datetime
    currency: str
    lines: tuple[Line, ...]
    total: Decimal


async def load_document(conn: asyncpg.Connection, invoice_id: int) -> InvoiceDocument:
    """Assemble the document of a stored invoice; LookupError when there is none."""
    invoice = await storage.load_invoice(conn, invoice_id)
    who = await world.account_address(conn, invoice.account_id)
    zone = ZoneInfo(who["timezone"])
    return InvoiceDocument(
        invoice_id=invoice.id,
        kind=invoice.kind,
        corrects_id=invoice.corrects_id,
        account_number=who["number"],
        holder_name=who["holder_name"],
        flat_number=who["flat_number"],
        building_name=who["name"],
        building_address=who["address"],
        period_first_day=invoice.period_start.astimezone(zone).date(),
        period_last_day=invoice.period_end.astimezone(zone).date() - timedelta(days=1),
        issued_at=invoice.issued_at,
        currency=invoice.currency,
        lines=invoice.lines,
        total=invoice.total,
    )
