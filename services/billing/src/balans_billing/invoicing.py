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
import structlog
from pydantic import BaseModel, ConfigDict

from balans_billing import storage
from balans_billing.charges import AccountFacts, Line, UsageError, price_usage
from balans_billing.occupancy import (
    Holding,
    Period,
    SharedFlatError,
    Tenure,
    holdings,
    vacancies,
)
from balans_billing.periods import PeriodError, first_day, require_ended, whole_months
from balans_billing.tariffs import TariffSpec
from balans_billing.vacancy import (
    VACANT_RESIDENTS,
    VacantRule,
    merge_lines,
    rules_of,
    vacant_tariff,
)
from balans_db.queries import allocation, world

log = structlog.get_logger(__name__)


class NoTariffError(LookupError):
    """No tariff version is in force for a utility on a period's first day."""


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

    Each account is billed for the part of the period it held its flat
    (:mod:`balans_billing.occupancy`): the metered use of its own hours, the monthly charges
    prorated by its days. Heat is billed to every holder; another utility only where the
    flat has a meter of it. Heat metering points count at least one per flat (a flat on a
    riser distributor is metered through its riser). The days no account holds a flat are
    billed to the building's owner account under the methodology's vacant-flat rule
    (:mod:`balans_billing.vacancy`). Two accounts holding a flat on the same day refuse
    the whole run (SharedFlatError).
    """
    timezone = await storage.building_timezone(conn, building_id)
    period = Period(start, end, timezone, whole_months(start, end, timezone))
    day = first_day(start, timezone)
    points = await world.metering_points(conn, building_id)
    suppliers = await storage.suppliers_of(conn, building_id)
    accounts = await storage.accounts_of(conn, building_id)
    loads = await storage.connected_kw(conn, [a.account_id for a in accounts])
    held = holdings(
        period,
        (Tenure(a.account_id, a.number, a.flat_id, a.opened_on, a.closed_on) for a in accounts),
    )
    metered: dict[int, set[str]] = defaultdict(set)
    for (flat_id, utility), count in points.items():
        if utility != "heat" and count > 0:
            metered[flat_id].add(utility)
    tariffs: dict[str, TariffSpec] = {}
    used_in: dict[tuple[datetime, datetime], dict[tuple[int, str], Decimal]] = {}

    async def price(
        flat_id: int,
        span: Holding,
        residents: int,
        area: Decimal,
        kw: dict[str, Decimal],
        rule: VacantRule | None = None,
    ) -> list[Line]:
        window = (span.start_at, span.end_at)
        if window not in used_in:
            used_in[window] = await allocation.flat_consumption(conn, building_id, *window)
        lines: list[Line] = []
        for utility in ["heat", *sorted(metered[flat_id])]:
            if utility not in tariffs:
                supplier = suppliers[utility]
                versions = await storage.load_tariffs(conn, utility, supplier)
                tariffs[utility] = tariff_in_force(versions, day, utility, supplier)
            own_points = points.get((flat_id, utility), 0)
            facts = AccountFacts(
                residents=residents,
                area_m2=area,
                metering_points=max(1, own_points) if utility == "heat" else own_points,
                connected_kw=kw.get(utility),
            )
            tariff = tariffs[utility] if rule is None else vacant_tariff(tariffs[utility], rule)
            measured = used_in[window].get((flat_id, utility), Decimal(0))
            lines.extend(price_usage(tariff, measured, facts, span.months))
        return lines

    result: dict[int, list[Line]] = {}
    for account in accounts:
        span = held.get(account.account_id)
        if span is None:
            continue
        own_kw = {u: kw for (a, u), kw in loads.items() if a == account.account_id}
        result[account.account_id] = await price(
            account.flat_id, span, account.residents, account.area_m2, own_kw
        )
    areas = await storage.flat_areas(conn, building_id)
    vacant = vacancies(period, areas, held.values())
    if vacant:
        rule = rules_of(await storage.building_methodology(conn, building_id)).vacant_flat
        owner = await world.owner_account(conn, building_id)
        if rule == "none" or owner is None:
            log.info(
                "vacant days not billed",
                building_id=building_id,
                rule=rule,
                owner_account=owner is not None,
                flat_days=sum(v.days for v in vacant),
            )
        else:
            lines: list[Line] = []
            for span in vacant:
                lines.extend(
                    await price(span.flat_id, span, VACANT_RESIDENTS, areas[span.flat_id], {}, rule)
                )
            result[owner["id"]] = merge_lines(lines, "vacant flats")
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
        for account_id in existing.keys() - fresh.keys():
            fresh[account_id] = []  # billed before, holds no day of the period now: credit it
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
