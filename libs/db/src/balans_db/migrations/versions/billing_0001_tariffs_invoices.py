"""billing: versioned tariffs, supplier assignments, connected loads, invoices and their lines

Revision ID: billing_0001
Revises: 0001_core
Create Date: 2026-11-27 17:50:00

Tariffs are versioned data: one row per (utility, supplier, version) with its effective
dates and the validated tariff document (``balans_billing.tariffs.TariffSpec``) as jsonb.
Invoices are immutable once issued: late data produces a row of kind 'correction' that
points at the invoice it corrects (see docs/billing.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "billing_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("billing",)
depends_on: str | Sequence[str] | None = None

UTILITY_CHECK = "utility in ('heat', 'hot_water', 'cold_water', 'gas', 'electricity')"


def upgrade() -> None:
    op.create_table(
        "tariffs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("utility", sa.Text(), nullable=False),
        sa.Column("supplier", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=False),
        sa.Column("effective_to", sa.Date()),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("utility", "supplier", "version", name="uq_tariffs_version"),
        sa.CheckConstraint(UTILITY_CHECK, name="ck_tariffs_utility"),
        sa.CheckConstraint(
            "effective_to is null or effective_to > effective_from", name="ck_tariffs_dates"
        ),
    )
    op.create_table(
        "billing_suppliers",
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey("buildings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("utility", sa.Text(), primary_key=True),
        sa.Column("supplier", sa.Text(), nullable=False),
        sa.CheckConstraint(UTILITY_CHECK, name="ck_billing_suppliers_utility"),
    )
    op.create_table(
        "connected_loads",
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("utility", sa.Text(), primary_key=True),
        sa.Column("connected_kw", sa.Numeric(10, 3), nullable=False),
        sa.CheckConstraint(UTILITY_CHECK, name="ck_connected_loads_utility"),
        sa.CheckConstraint("connected_kw >= 0", name="ck_connected_loads_kw"),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey("buildings.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("corrects_id", sa.Integer(), sa.ForeignKey("invoices.id", ondelete="CASCADE")),
        sa.Column("currency", sa.Text(), server_default="MDL", nullable=False),
        sa.Column("total", sa.Numeric(14, 2), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("kind in ('invoice', 'correction')", name="ck_invoices_kind"),
        sa.CheckConstraint(
            "(kind = 'invoice') = (corrects_id is null)", name="ck_invoices_correction_target"
        ),
        sa.CheckConstraint("period_end > period_start", name="ck_invoices_period"),
    )
    op.create_index(
        "uq_invoices_account_period",
        "invoices",
        ["account_id", "period_start", "period_end"],
        unique=True,
        postgresql_where=sa.text("kind = 'invoice'"),
    )
    op.create_index("ix_invoices_building_period", "invoices", ["building_id", "period_start"])
    op.create_table(
        "invoice_lines",
        sa.Column(
            "invoice_id",
            sa.Integer(),
            sa.ForeignKey("invoices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("line_no", sa.SmallInteger(), primary_key=True),
        sa.Column("utility", sa.Text(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(14, 3), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("unit_price", sa.Numeric(14, 4), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.CheckConstraint(UTILITY_CHECK, name="ck_invoice_lines_utility"),
    )


def downgrade() -> None:
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_building_period", table_name="invoices")
    op.drop_index("uq_invoices_account_period", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("connected_loads")
    op.drop_table("billing_suppliers")
    op.drop_table("tariffs")
