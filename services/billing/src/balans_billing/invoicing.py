"""Invoices per account and period, and corrections when consumption changes afterwards.

:func:`bill_building` is idempotent: the first run issues one invoice per account; a run
with unchanged data writes nothing; a run after late data writes, per account whose
lines changed, a *correction* holding the difference (credit < 0, debit > 0) against
what was issued, never touching the issued rows. Everything for one building and
period happens in one transaction: a missing tariff or fact writes nothing at all.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from balans_billing import storage
from balans_billing.charges import AccountFacts, Line, UsageError, price_usage
from balans_billing.periods import PeriodError, first_day, require_ended, whole_months
from balans_billing.tariffs import TariffSpec
from balans_db.queries import allocation, world


class NoTariffError(LookupError):
    """No tariff version is in force for a utility on a period's first day."""


class SharedFlatError(ValueError):
    """Several accounts on one flat: each would be billed the flat's whole consumption, and
    there is no agreed split, so the building is not billed until one account remains."""


REFUSALS: tuple[type[Exception], ...] = (
    NoTariffError,
    SharedFlatError,
    PeriodError,
    UsageError,
    LookupError,
    ValueError,
)
"""Errors of data or configuration: the run wrote nothing, and retrying cannot help until
someone fixes the tariff, the period or the account's facts."""


class Issued(BaseModel):
    """An invoice or correction written by one billing run."""

    model_config = ConfigDict(frozen=True)

    invoice_id: int
    account_id: int
    kind: Literal["invoice", "correction"]
    corrects_id: int | None
    period_start: datetime
    period_end: datetime
    total: Decimal


def tariff_in_force(
    versions: list[TariffSpec], day: date, utility: str, supplier: str
) -> TariffSpec:
    """The version in force on ``day``; NoTariffError names what is missing."""
    for spec in versions:
        if spec.in_force_on(day):
            return spec
    raise NoTariffError(f"no {utility} tariff of supplier {supplier!r} in force on {day}")


def refuse_shared_flats(accounts: list[storage.AccountRow]) -> None:
    """SharedFlatError naming every flat that has more than one account, and its accounts."""
    by_flat: dict[int, list[str]] = defaultdict(list)
    for account in accounts:
        by_flat[account.flat_id].append(account.number)
    shared = {flat: numbers for flat, numbers in by_flat.items() if len(numbers) > 1}
    if shared:
        detail = "; ".join(f"flat {flat}: {', '.join(nums)}" for flat, nums in shared.items())
        raise SharedFlatError(
            f"a flat is billed through exactly one account, these have several ({detail}); "
            "close or move the extra accounts"
        )


def correction_lines(issued: list[Line], fresh: list[Line]) -> list[Line]:
    """Lines that take the sum of ``issued`` to ``fresh``, one per changed (utility, code).

    A correction line's amount is the exact difference of amounts, so issued + corrections
    always equals a fresh invoice to the ban.
    """
    before: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in issued:
        before[(line.utility, line.code)].append(line)
    after = {(line.utility, line.code): line for line in fresh}
    out: list[Line] = []
    for key in [*after, *(k for k in before if k not in after)]:
        old = before.get(key, [])
        new = after.get(key)
        quantity = (new.quantity if new else Decimal(0)) - sum(
            (x.quantity for x in old), Decimal(0)
        )
        amount = (new.amount if new else Decimal(0)) - sum((x.amount for x in old), Decimal(0))
        if quantity == 0 and amount == 0:
            continue
        like = new or old[-1]
        out.append(
            Line(
                utility=like.utility,
                code=like.code,
                description=f"correction: {like.description}",
                quantity=quantity,
                unit=like.unit,
                unit_price=like.unit_price,
                amount=amount,
            )
        )
    return out


async def compute_lines(
    conn: asyncpg.Connection, building_id: int, start: datetime, end: datetime
) -> dict[int, list[Line]]:
    """account id -> the lines it owes for [start, end), from current data (writes nothing).

    Heat is billed to every account; another utility only to accounts whose flat has a
    meter of it. Heat metering points count at least one per flat (a flat on a riser
    distributor is metered through its riser). A flat with several accounts refuses the
    whole run (SharedFlatError).
    """
    timezone = await storage.building_timezone(conn, building_id)
    months = whole_months(start, end, timezone)
    day = first_day(start, timezone)
    used = await allocation.flat_consumption(conn, building_id, start, end)
    points = await world.metering_points(conn, building_id)
    suppliers = await storage.suppliers_of(conn, building_id)
    accounts = await storage.accounts_of(conn, building_id)
    loads = await storage.connected_kw(conn, [a.account_id for a in accounts])
    refuse_shared_flats(accounts)
    metered: dict[int, set[str]] = defaultdict(set)
    for (flat_id, utility), count in points.items():
        if utility != "heat" and count > 0:
            metered[flat_id].add(utility)
    tariffs: dict[str, TariffSpec] = {}
    result: dict[int, list[Line]] = {}
    for account in accounts:
        lines: list[Line] = []
        for utility in ["heat", *sorted(metered[account.flat_id])]:
            if utility not in tariffs:
                supplier = suppliers[utility]
                versions = await storage.load_tariffs(conn, utility, supplier)
                tariffs[utility] = tariff_in_force(versions, day, utility, supplier)
            own_points = points.get((account.flat_id, utility), 0)
            facts = AccountFacts(
                residents=account.residents,
                area_m2=account.area_m2,
                metering_points=max(1, own_points) if utility == "heat" else own_points,
                connected_kw=loads.get((account.account_id, utility)),
            )
            measured = used.get((account.flat_id, utility), Decimal(0))
            lines.extend(price_usage(tariffs[utility], measured, facts, months))
        result[account.account_id] = lines
    return result


async def bill_building(
    conn: asyncpg.Connection, building_id: int, start: datetime, end: datetime
) -> list[Issued]:
    """Issue invoices (first run) or corrections (after late data) for a building's period.

    Returns what was written; an empty list when everything issued is still right. A
    period that has not ended yet is refused (``PeriodError``), whoever asks.
    """
    require_ended(end, datetime.now(UTC))
    issued: list[Issued] = []
    async with conn.transaction():
        await conn.execute(
            "select pg_advisory_xact_lock(hashtext('billing.building'), $1::int)", building_id
        )
        fresh = await compute_lines(conn, building_id, start, end)
        existing: dict[int, list[storage.StoredInvoice]] = defaultdict(list)
        for inv in await storage.invoices_for_period(conn, building_id, start, end):
            existing[inv.account_id].append(inv)
        for account_id, lines in fresh.items():
            history = existing.get(account_id)
            if not history:
                lines_to_write, corrects = lines, None
            else:
                lines_to_write = correction_lines(
                    [ln for inv in history for ln in inv.lines], lines
                )
                corrects = next(inv.id for inv in history if inv.kind == "invoice")
                if not lines_to_write:
                    continue
            invoice_id = await storage.insert_invoice(
                conn,
                account_id=account_id,
                building_id=building_id,
                start=start,
                end=end,
                lines=lines_to_write,
                corrects_id=corrects,
            )
            issued.append(
                Issued(
                    invoice_id=invoice_id,
                    account_id=account_id,
                    kind="invoice" if corrects is None else "correction",
                    corrects_id=corrects,
                    period_start=start,
                    period_end=end,
                    total=sum((ln.amount for ln in lines_to_write), Decimal(0)),
                )
            )
    return issued
