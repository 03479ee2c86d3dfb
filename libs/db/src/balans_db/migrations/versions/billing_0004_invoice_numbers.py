"""billing: invoice numbers (gapless per issuer and year), issuer and due date

Revision ID: billing_0004
Revises: billing_0003
Create Date: 2026-12-06 17:30:00

An invoice or correction gets ``number`` = ``<year>-<n>`` from ``invoice_numbers``, one
counter row per issuer (the building's heat supplier, ``default`` without one) and year,
incremented in the transaction that writes the invoice: a rolled-back run takes no number,
so the sequence has no gaps (a PostgreSQL sequence would leave them). ``due_on`` is the
payment date printed on the document. Invoices issued before this migration are numbered
here in the order they were written.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "billing_0004"
down_revision: str | Sequence[str] | None = "billing_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
with numbered as (
  select id, extract(year from issued_at at time zone 'UTC')::int as year,
         row_number() over (partition by extract(year from issued_at at time zone 'UTC')
                            order by id) as n
  from invoices)
update invoices i
set issuer = 'default', number = x.year || '-' || lpad(x.n::text, 6, '0'),
    due_on = (i.issued_at at time zone 'UTC')::date + 20
from numbered x where x.id = i.id
"""

COUNTERS = """
insert into invoice_numbers (issuer, year, last_number)
select 'default', extract(year from issued_at at time zone 'UTC')::int, count(*)
from invoices group by 2
"""


def upgrade() -> None:
    op.create_table(
        "invoice_numbers",
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("issuer", "year", name=op.f("pk_invoice_numbers")),
        sa.CheckConstraint("last_number > 0", name=op.f("ck_invoice_numbers_positive")),
    )
    op.add_column("invoices", sa.Column("issuer", sa.Text()))
    op.add_column("invoices", sa.Column("number", sa.Text()))
    op.add_column("invoices", sa.Column("due_on", sa.Date()))
    op.execute(BACKFILL)
    op.execute(COUNTERS)
    op.alter_column("invoices", "issuer", nullable=False)
    op.alter_column("invoices", "number", nullable=False)
    op.alter_column("invoices", "due_on", nullable=False)
    op.create_unique_constraint(op.f("uq_invoices_issuer"), "invoices", ["issuer", "number"])


def downgrade() -> None:
    op.drop_constraint(op.f("uq_invoices_issuer"), "invoices", type_="unique")
    op.drop_column("invoices", "due_on")
    op.drop_column("invoices", "number")
    op.drop_column("invoices", "issuer")
    op.drop_table("invoice_numbers")
