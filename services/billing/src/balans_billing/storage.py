"""The SQL on billing's tables (declared in :mod:`balans_db.tables.billing`), run with
asyncpg. The world and the consumption are read through the queries their owners publish
(:mod:`balans_db.queries`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from balans_billing.charges import Line
from balans_billing.tariffs import TariffSpec
from balans_core import outbox
from balans_db.queries import world
from balans_protocol import subjects
from balans_protocol.messages import InvoiceIssued

DEFAULT_SUPPLIER = "default"
OUTBOX = "billing_outbox"  # balans_db.tables.billing_outbox, sent by the service's relay


def invoice_msg_id(invoice_id: int) -> str:
    """JetStream de-duplication id of an invoice's announcement (stream INVOICES)."""
    return f"invoice-{invoice_id}"


class TariffConflictError(ValueError):
    """A new tariff version's dates overlap a stored version of the same utility and supplier."""


async def _lock_versions(conn: asyncpg.Connection, spec: TariffSpec) -> None:
    """Serialise versioning of one (utility, supplier) across concurrent writers (until the
    transaction ends)."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtext('billing.tariff.' || $1 || '.' || $2))",
        spec.utility,
        spec.supplier,
    )


async def add_tariff(conn: asyncpg.Connection, spec: TariffSpec) -> int:
    """Store a validated tariff as the next version of its (utility, supplier); return its id.

    Refuses (and writes nothing) when its effective period overlaps a stored version.
    """
    async with conn.transaction():
        await _lock_versions(conn, spec)
        for other in await load_tariffs(conn, spec.utility, spec.supplier):
            if spec.overlaps(other):
                raise TariffConflictError(
                    f"{spec.utility}/{spec.supplier} tariff from {spec.effective_from} overlaps "
                    f"the version in force {other.effective_from}..{other.effective_to or 'open'}"
                )
        return await conn.fetchval(
            """insert into tariffs (utility, supplier, version, effective_from, effective_to, spec)
               select $1, $2, coalesce(max(version), 0) + 1, $3, $4, $5::jsonb
               from tariffs where utility = $1 and supplier = $2
               returning id""",
            spec.utility,
            spec.supplier,
            spec.effective_from,
            spec.effective_to,
            spec.model_dump_json(),
        )


async def add_version(conn: asyncpg.Connection, spec: TariffSpec) -> tuple[int, int]:
    """Store ``spec`` as the version in force from its ``effective_from``: the stored version
    open on that day (no end, begun before it) now ends there. Return (id, version);
    TariffConflictError (nothing written) when it still overlaps a stored version."""
    async with conn.transaction():
        await _lock_versions(conn, spec)
        await conn.execute(
            """update tariffs set effective_to = $3,
                      spec = jsonb_set(spec, '{effective_to}', to_jsonb($3::date::text))
               where utility = $1 and supplier = $2 and effective_to is null
                 and effective_from < $3""",
            spec.utility,
            spec.supplier,
            spec.effective_from,
        )
        tariff_id = await add_tariff(conn, spec)
        version = await conn.fetchval("select version from tariffs where id = $1", tariff_id)
    return tariff_id, version


async def load_tariffs(conn: asyncpg.Connection, utility: str, supplier: str) -> list[TariffSpec]:
    """Every stored version of a utility's tariff of one supplier, oldest first."""
    rows = await conn.fetch(
        "select spec from tariffs where utility = $1 and supplier = $2 order by version",
        utility,
        supplier,
    )
    return [TariffSpec.model_validate(json.loads(r["spec"])) for r in rows]


async def suppliers_of(conn: asyncpg.Connection, building_id: int) -> dict[str, str]:
    """utility -> supplier assigned to the building (``default`` where none is assigned)."""
    rows = await conn.fetch(
        "select utility, supplier from billing_suppliers where building_id = $1", building_id
    )
    return defaultdict(lambda: DEFAULT_SUPPLIER, {r["utility"]: r["supplier"] for r in rows})


@dataclass(frozen=True)
class AccountRow:
    """An account and the facts of its flat that tariffs need."""

    account_id: int
    number: str
    flat_id: int
    residents: int
    area_m2: Decimal
    opened_on: date | None = None
    closed_on: date | None = None


async def building_timezone(conn: asyncpg.Connection, building_id: int) -> str:
    """The IANA time zone of the building's site (billing periods are local months)."""
    tz = await world.site_timezone(conn, building_id)
    if tz is None:
        raise LookupError(f"no building {building_id}")
    return tz


async def accounts_of(conn: asyncpg.Connection, building_id: int) -> list[AccountRow]:
    """The building's accounts with their flats' residents and area, by account id."""
    rows = await world.building_accounts(conn, building_id)
    return [
        AccountRow(
            r["id"],
            r["number"],
            r["flat_id"],
            r["residents"],
            r["area_m2"],
            r["opened_on"],
            r["closed_on"],
        )
        for r in rows
    ]


async def building_methodology(conn: asyncpg.Connection, building_id: int) -> dict[str, Any]:
    """The building's methodology settings (jsonb, decoded)."""
    rows = await world.buildings_by_id(conn, [building_id])
    if not rows:
        raise LookupError(f"no building {building_id}")
    value = rows[0]["methodology"]
    decoded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return decoded


async def flat_areas(conn: asyncpg.Connection, building_id: int) -> dict[int, Decimal]:
    """flat id -> area in m2, of every flat of the building (vacant ones included)."""
    return {r["id"]: r["area_m2"] for r in await world.flats_of(conn, [building_id])}


async def connected_kw(
    conn: asyncpg.Connection, account_ids: list[int]
) -> dict[tuple[int, str], Decimal]:
    """(account id, utility) -> connected load in kW of these accounts, for capacity
    charges per kW."""
    rows = await conn.fetch(
        """select account_id, utility, connected_kw from connected_loads
           where account_id = any($1::int[])""",
        account_ids,
    )
    return {(r["account_id"], r["utility"]): r["connected_kw"] for r in rows}


@dataclass(frozen=True)
class StoredInvoice:
    """An invoice or correction row with its lines."""

    id: int
    account_id: int
    building_id: int
    period_start: datetime
    period_end: datetime
    kind: str
    corrects_id: int | None
    currency: str
    total: Decimal
    issued_at: datetime
    issuer: str
    number: str
    due_on: date
    lines: tuple[Line, ...]


async def invoices_for_period(
    conn: asyncpg.Connection, building_id: int, start: datetime, end: datetime
) -> list[StoredInvoice]:
    """Every invoice and correction of the building for exactly this period, oldest first."""
    rows = await conn.fetch(
        """select * from invoices where building_id = $1 and period_start = $2
           and period_end = $3 order by id""",
        building_id,
        start,
        end,
    )
    return await _with_lines(conn, rows)


async def load_invoice(conn: asyncpg.Connection, invoice_id: int) -> StoredInvoice:
    """One invoice (or correction) with its lines; LookupError when there is none."""
    rows = await conn.fetch("select * from invoices where id = $1", invoice_id)
    if not rows:
        raise LookupError(f"no invoice {invoice_id}")
    return (await _with_lines(conn, rows))[0]


async def _with_lines(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> list[StoredInvoice]:
    lines = await conn.fetch(
        """select * from invoice_lines where invoice_id = any($1::int[])
           order by invoice_id, line_no""",
        [r["id"] for r in rows],
    )
    by_invoice: dict[int, list[Line]] = defaultdict(list)
    for ln in lines:
        by_invoice[ln["invoice_id"]].append(
            Line(
                utility=ln["utility"],
                code=ln["code"],
                description=ln["description"],
                quantity=ln["quantity"],
                unit=ln["unit"],
                unit_price=ln["unit_price"],
                amount=ln["amount"],
            )
        )
    return [
        StoredInvoice(
            id=r["id"],
            account_id=r["account_id"],
            building_id=r["building_id"],
            period_start=r["period_start"],
            period_end=r["period_end"],
            kind=r["kind"],
            corrects_id=r["corrects_id"],
            currency=r["currency"],
            total=r["total"],
            issued_at=r["issued_at"],
            issuer=r["issuer"],
            number=r["number"],
            due_on=r["due_on"],
            lines=tuple(by_invoice[r["id"]]),
        )
        for r in rows
    ]


# days from the issue to the due date printed on the document
PAYMENT_DAYS = 20


async def invoice_issuer(conn: asyncpg.Connection, building_id: int) -> str:
    """Who issues the building's invoices, and so whose number sequence they take: the
    building's heat supplier (``default`` without one)."""
    supplier = await conn.fetchval(
        "select supplier from billing_suppliers where building_id = $1 and utility = 'heat'",
        building_id,
    )
    return str(supplier or "default")


async def insert_invoice(
    conn: asyncpg.Connection,
    *,
    account_id: int,
    building_id: int,
    start: datetime,
    end: datetime,
    lines: list[Line],
    corrects_id: int | None = None,
) -> int:
    """Write an invoice (or, with ``corrects_id``, a correction), its lines and its
    InvoiceIssued announcement (billing's outbox, message id ``invoice-<id>``); the total is
    the sum of the lines. Call inside a transaction: the announcement exists exactly when
    the invoice does."""
    total = sum((line.amount for line in lines), Decimal(0))
    issuer = await invoice_issuer(conn, building_id)
    invoice_id: int = await conn.fetchval(
        """with counter as (
             insert into invoice_numbers (issuer, year, last_number)
             values ($8, extract(year from now() at time zone 'UTC')::int, 1)
             on conflict (issuer, year)
             do update set last_number = invoice_numbers.last_number + 1
             returning year, last_number)
           insert into invoices (account_id, building_id, period_start, period_end, kind,
                                 corrects_id, total, issuer, number, due_on)
           select $1, $2, $3, $4, $5, $6, $7, $8,
                  year || '-' || lpad(last_number::text, 6, '0'),
                  (now() at time zone 'UTC')::date + $9::int
           from counter returning id""",
        account_id,
        building_id,
        start,
        end,
        "invoice" if corrects_id is None else "correction",
        corrects_id,
        total,
        issuer,
        PAYMENT_DAYS,
    )
    await conn.executemany(
        """insert into invoice_lines (invoice_id, line_no, utility, code, description, quantity,
                                      unit, unit_price, amount)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
        [
            (
                invoice_id,
                n,
                ln.utility,
                ln.code,
                ln.description,
                ln.quantity,
                ln.unit,
                ln.unit_price,
                ln.amount,
            )
            for n, ln in enumerate(lines, start=1)
        ],
    )
    announcement = InvoiceIssued(
        invoice_id=invoice_id,
        account_id=account_id,
        period_start=start,
        period_end=end,
        total_mdl=str(total),
        kind="invoice" if corrects_id is None else "correction",
        corrects_id=corrects_id,
    )
    await outbox.enqueue(
        conn,
        OUTBOX,
        subjects.invoice(account_id),
        announcement,
        msg_id=invoice_msg_id(invoice_id),
    )
    return invoice_id
