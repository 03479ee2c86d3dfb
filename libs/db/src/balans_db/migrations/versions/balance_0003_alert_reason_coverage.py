"""balance: an alert's one reason and dates, a group's metering coverage and loss target

Revision ID: balance_0003
Revises: balance_0002
Create Date: 2026-12-06 19:00:00

``alerts``: ``first_hour`` is when the fault began (the detector's first hour) and
``opened_at`` when the row was written; ``detected_hour`` is the hour the detector
confirmed it, ``began_before`` says the fault is older than the data the analysis read
("since before <first_hour>"), ``reason_code`` and ``reason_params`` name the one reason
that fired (translatable: the code picks the sentence, the params fill it), so the list
needs neither ``summary``'s English nor ``evidence``.

``balance_groups``: ``flats_served`` (flats the group's balance meter serves),
``flats_metered`` (of them, flats with a member meter of the group's utility, or served
by a member riser meter), ``coverage_complete`` (enough of them metered for the
imbalance to mean anything; below it the group raises no imbalance alerts) and
``loss_target_share`` (the loss an operator accepts, as a share of the balance meter).
Written by balance at each analysis. See docs/balance.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "balance_0003"
down_revision: str | Sequence[str] | None = "balance_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("alerts", sa.Column("detected_hour", sa.DateTime(timezone=True)))
    op.add_column(
        "alerts", sa.Column("began_before", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("alerts", sa.Column("reason_code", sa.Text()))
    op.add_column(
        "alerts",
        sa.Column(
            "reason_params",
            postgresql.JSONB(),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )
    op.add_column("balance_groups", sa.Column("flats_served", sa.Integer()))
    op.add_column("balance_groups", sa.Column("flats_metered", sa.Integer()))
    op.add_column("balance_groups", sa.Column("coverage_complete", sa.Boolean()))
    op.add_column("balance_groups", sa.Column("loss_target_share", sa.Float()))


def downgrade() -> None:
    for column in ("loss_target_share", "coverage_complete", "flats_metered", "flats_served"):
        op.drop_column("balance_groups", column)
    for column in ("reason_params", "reason_code", "began_before", "detected_hour"):
        op.drop_column("alerts", column)
