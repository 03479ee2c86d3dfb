"""An invoice as the consumer and integrators see it: one pydantic model for every export.

Besides the lines it carries what a resident needs to check the bill: the invoice number
(gapless per issuer and year), issue and due dates, payer, address and account, each
meter's registers at the period's start and end, and how complete the period's heat data
is (hours with data, hours estimated), so that a bill over an incomplete or estimated
month says so."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from balans_billing import storage
from balans_billing.charges import Line
from balans_billing.occupancy import Period
from balans_db.queries import allocation, ingest, world


class MeterReadings(BaseModel):
    """One meter's registers at the period's first and last instant (None: not read)."""

    model_config = ConfigDict(frozen=True)

    serial: str
    utility: str
    unit: str
    start_on: date
    end_on: date
    start_value: Decimal | None
    end_value: Decimal | None

    @property
    def used(self) -> Decimal | None:
        if self.start_value is None or self.end_value is None:
            return None
        return self.end_value - self.start_value


class DataCoverage(BaseModel):
    """How much of the period's heat was known: ``hours`` with data out of
    ``hours_in_period``, of which ``estimated_hours`` estimated from comparable flats."""

    model_config = ConfigDict(frozen=True)

    hours_in_period: int
    hours: int
    estimated_hours: int

    @property
    def incomplete(self) -> bool:
        return self.hours < self.hours_in_period

    @property
    def estimated(self) -> bool:
        return self.estimated_hours > 0


class InvoiceDocument(BaseModel):
    """An invoice or correction with who, where and when; ``total`` = sum of line amounts."""

    model_config = ConfigDict(frozen=True)

    invoice_id: int
    number: str
    issuer: str
    kind: str
    corrects_id: int | None
    corrects_number: str | None = None
    account_number: str
    holder_name: str
    flat_number: str | None = Field(description="null on the owner account's invoice")
    building_name: str
    building_address: str
    period_first_day: date
    period_last_day: date
    issued_at: datetime
    issued_on: date
    due_on: date
    currency: str
    lines: tuple[Line, ...]
    total: Decimal
    meters: tuple[MeterReadings, ...] = ()
    heat_data: DataCoverage | None = None


def _register(count: int | None, weight: float, offset: Decimal) -> Decimal | None:
    """The meter's register: offset + count × pulse weight (the offset is not 0 for a
    meter put on its input by an exchange, docs/provisioning.md)."""
    if count is None:
        return None
    return (Decimal(offset) + Decimal(count) * Decimal(str(weight))).normalize()


async def load_document(conn: asyncpg.Connection, invoice_id: int) -> InvoiceDocument:
    """Assemble the document of a stored invoice; LookupError when there is none."""
    invoice = await storage.load_invoice(conn, invoice_id)
    who = await world.account_address(conn, invoice.account_id)
    if who is None:
        raise LookupError(f"no account {invoice.account_id}")
    zone = ZoneInfo(who["timezone"])
    # the account's own days of the period (a tenant change splits it, docs/billing.md)
    period = Period(invoice.period_start, invoice.period_end, who["timezone"], 1)
    days = period.clip(who["opened_on"], who["closed_on"]) or (period.first, period.end)
    start, end = period.instant(days[0]), period.instant(days[1])
    first, last = days[0], days[1] - timedelta(days=1)
    registers: list[Any] = []
    heat = None
    if who["flat_id"] is not None:  # the owner account's lines are vacant flats'
        registers = await ingest.flat_meter_registers(conn, who["flat_id"], start, end)
        heat = await allocation.flat_heat_summary(conn, who["flat_id"], start, end)
    corrected = (
        await storage.load_invoice(conn, invoice.corrects_id) if invoice.corrects_id else None
    )
    return InvoiceDocument(
        invoice_id=invoice.id,
        number=invoice.number,
        issuer=invoice.issuer,
        kind=invoice.kind,
        corrects_id=invoice.corrects_id,
        corrects_number=corrected.number if corrected else None,
        account_number=who["number"],
        holder_name=who["holder_name"],
        flat_number=who["flat_number"],
        building_name=who["name"],
        building_address=who["address"],
        period_first_day=first,
        period_last_day=last,
        issued_at=invoice.issued_at,
        issued_on=invoice.issued_at.astimezone(zone).date(),
        due_on=invoice.due_on,
        currency=invoice.currency,
        lines=invoice.lines,
        total=invoice.total,
        meters=tuple(
            MeterReadings(
                serial=r["serial"],
                utility=r["utility"],
                unit=r["unit"],
                start_on=r["started_at"].astimezone(zone).date() if r["started_at"] else first,
                end_on=r["ended_at"].astimezone(zone).date()
                if r["ended_at"]
                else last + timedelta(days=1),
                start_value=_register(r["at_start"], r["pulse_weight"], r["register_offset"]),
                end_value=_register(r["at_end"], r["pulse_weight"], r["register_offset"]),
            )
            for r in registers
        ),
        heat_data=None
        if heat is None
        else DataCoverage(
            hours_in_period=round((end - start).total_seconds()) // 3600,
            hours=heat["hours"],
            estimated_hours=heat["estimated_hours"],
        ),
    )
