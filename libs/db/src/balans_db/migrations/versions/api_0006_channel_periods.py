"""api: channel assignments with validity periods (meter exchange)

Revision ID: api_0006_channel_periods
Revises: api_0005_outbox
Create Date: 2026-12-06 19:00:00

A channel maps a module input to a meter *for a period* ``[valid_from, valid_to)`` (NULL:
since always / still in service), so a meter exchanged on the same input keeps its
history and its successor starts a new period. Readings stay module counts; the meter's
register is ``register_offset + count * pulse_weight`` within its period.
``count_at_start`` / ``count_at_end`` are the module's counts at the period's ends where
they are known from an exchange record (docs/provisioning.md, "Meter exchange").

Only one *open* period per module input (a partial unique index replaces the unique
(module_serial, input)); periods of one input must not overlap (checked by the code that
records exchanges).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0006_channel_periods"
down_revision: str | Sequence[str] | None = "api_0005_outbox"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("channels", sa.Column("valid_from", sa.DateTime(timezone=True)))
    op.add_column("channels", sa.Column("valid_to", sa.DateTime(timezone=True)))
    op.add_column("channels", sa.Column("count_at_start", sa.BigInteger()))
    op.add_column("channels", sa.Column("count_at_end", sa.BigInteger()))
    op.add_column(
        "channels",
        sa.Column("register_offset", sa.Numeric(18, 6), nullable=False, server_default="0"),
    )
    op.create_check_constraint(
        op.f("ck_channels_period_order"),
        "channels",
        "valid_from is null or valid_to is null or valid_from < valid_to",
    )
    op.drop_constraint("uq_channels_module_input", "channels", type_="unique")
    op.create_index(
        "uq_channels_module_input_open",
        "channels",
        ["module_serial", "input"],
        unique=True,
        postgresql_where=sa.text("valid_to is null"),
    )
    op.create_index("ix_channels_module_input", "channels", ["module_serial", "input"])


def downgrade() -> None:
    op.drop_index("ix_channels_module_input", "channels")
    op.drop_index("uq_channels_module_input_open", "channels")
    op.execute("delete from channels where valid_to is not null")
    op.create_unique_constraint("uq_channels_module_input", "channels", ["module_serial", "input"])
    op.drop_constraint(op.f("ck_channels_period_order"), "channels", type_="check")
    for column in ("register_offset", "count_at_end", "count_at_start", "valid_to", "valid_from"):
        op.drop_column("channels", column)
