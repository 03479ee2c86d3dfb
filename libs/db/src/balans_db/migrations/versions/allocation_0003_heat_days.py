"""allocation: a flat's heat per local day

Revision ID: allocation_0003
Revises: allocation_0002
Create Date: 2026-12-06 17:40:00

``heat_allocation_days`` holds, per flat and local day of its site, the sum of its
``heat_allocation`` hours (``total_kwh``), how many hours there are and whether any is
estimated. Allocation rebuilds the days it touches in the transaction that writes the
hours, so a recomputation by late data replaces them; day and month series read ~30 rows a
month instead of ~720. Filled here from the hours already stored.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "allocation_0003"
down_revision: str | Sequence[str] | None = "allocation_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "heat_allocation_days",
        sa.Column("flat_id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("total_kwh", sa.Float(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
    )
    op.execute(
        """insert into heat_allocation_days (flat_id, day, building_id, total_kwh, hours,
                                             estimated)
           select h.flat_id, (h.hour at time zone s.timezone)::date, min(h.building_id),
                  sum(h.total_kwh), count(*), bool_or(h.estimated)
           from heat_allocation h
           join buildings b on b.id = h.building_id join sites s on s.id = b.site_id
           group by 1, 2"""
    )


def downgrade() -> None:
    op.drop_table("heat_allocation_days")
