"""Tariffs, supplier assignments, connected loads, invoices and period closures
(migrations ``billing_0001``, ``billing_0002``, ``billing_0003`` for the outbox,
``billing_0004`` for invoice numbers).

Owned by billing. Tariffs are versioned data (the validated tariff document as jsonb);
invoices are immutable once issued, late data adds a row of kind 'correction'. Other
services read them through :mod:`balans_db.queries.billing`. See docs/billing.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from balans_db.tables.base import UTILITIES, created_now, metadata, one_of, outbox_table

OWNER = "billing"

tariffs = sa.Table(
    "tariffs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("utility", sa.Text, nullable=False),
    sa.Column("supplier", sa.Text, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("effective_from", sa.Date, nullable=False),
    sa.Column("effective_to", sa.Date),
    sa.Column("spec", JSONB, nullable=False),
    created_now("created_at"),
    sa.UniqueConstraint("utility", "supplier", "version", name="uq_tariffs_version"),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
    sa.CheckConstraint("effective_to is null or effective_to > effective_from", name="dates"),
)

billing_suppliers = sa.Table(
    "billing_suppliers",
    metadata,
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("utility", sa.Text, primary_key=True),
    sa.Column("supplier", sa.Text, nullable=False),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
)

connected_loads = sa.Table(
    "connected_loads",
    metadata,
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("utility", sa.Text, primary_key=True),
    sa.Column("connected_kw", sa.Numeric(10, 3), nullable=False),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
    sa.CheckConstraint("connected_kw >= 0", name="kw"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("corrects_id", sa.ForeignKey("invoices.id", ondelete="CASCADE")),
    sa.Column("currency", sa.Text, nullable=False, server_default="MDL"),
    sa.Column("total", sa.Numeric(14, 2), nullable=False),
    created_now("issued_at"),
    # billing_0004: gapless number per issuer and year ("2026-000123"), payment date
    sa.Column("issuer", sa.Text, nullable=False),
    sa.Column("number", sa.Text, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.UniqueConstraint("issuer", "number", name="uq_invoices_issuer"),
    sa.CheckConstraint("kind in ('invoice', 'correction')", name="kind"),
    sa.CheckConstraint("(kind = 'invoice') = (corrects_id is null)", name="correction_target"),
    sa.CheckConstraint("period_end > period_start", name="period"),
    # one invoice per account and period; corrections may follow it
    sa.Index(
        "uq_invoices_account_period",
        "account_id",
        "period_start",
        "period_end",
        unique=True,
        postgresql_where=sa.text("kind = 'invoice'"),
    ),
    sa.Index("ix_invoices_building_period", "building_id", "period_start"),
)

invoice_lines = sa.Table(
    "invoice_lines",
    metadata,
    sa.Column("invoice_id", sa.ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("line_no", sa.SmallInteger, primary_key=True),
    sa.Column("utility", sa.Text, nullable=False),
    sa.Column("code", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("unit_price", sa.Numeric(14, 4), nullable=False),
    sa.Column("amount", sa.Numeric(14, 2), nullable=False),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
)

billing_period_closures = sa.Table(
    "billing_period_closures",
    metadata,
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
    created_now("closed_at"),
    sa.CheckConstraint("period_end > period_start", name="order"),
)

# the last invoice number per issuer and year (migration ``billing_0004``)
invoice_numbers = sa.Table(
    "invoice_numbers",
    metadata,
    sa.Column("issuer", sa.Text, primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("last_number", sa.Integer, nullable=False),
    sa.CheckConstraint("last_number > 0", name="positive"),
)

# InvoiceIssued and PeriodClosed announcements (migration ``billing_0003``)
billing_outbox = outbox_table("billing_outbox")
