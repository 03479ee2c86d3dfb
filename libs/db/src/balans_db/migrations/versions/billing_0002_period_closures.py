"""billing: the periods the period closer has announced as closed

Revision ID: billing_0002
Revises: billing_0001
Create Date: 2026-11-28 10:00:00

One row per building and local calendar month for which billing published PeriodClosed
(``balans_billing.closer``). The row is written in the same transaction that publishes,
so a restart never announces a period twice and a refused period is not re-announced
every minute (an operator re-issues it with ``balans billing issue``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "billing_0002"
down_revision: str | Sequence[str] | None = "billing_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "billing_period_closures",
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey("buildings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "closed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("period_end > period_start", name="ck_billing_period_closures_order"),
    )


def downgrade() -> None:
    op.drop_table("billing_period_closures")
