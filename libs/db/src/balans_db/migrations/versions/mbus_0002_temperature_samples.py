"""mbus: temperature samples of standard meters, so the stored reading is the hourly mean

Revision ID: mbus_0002
Revises: mbus_0001
Create Date: 2026-11-28 10:00:00

A standard meter sends its flow/return temperatures with every telegram (often several an
hour, possibly spread over several upload batches). ``temperature_readings`` holds hourly
means, as allocation expects; to keep that mean exact across batches and idempotent under
redelivery, every sample is kept here once (keyed by module and reception time) and the
hour's reading is recomputed from the samples of that hour. See docs/mbus.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mbus_0002"
down_revision: str | Sequence[str] | None = "mbus_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mbus_temperature_samples",
        sa.Column("module_serial", sa.BigInteger(), nullable=False),
        # the reading hour the sample belongs to (top of the hour at or after reception)
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("supply_centi_c", sa.Integer(), nullable=False),
        sa.Column("return_centi_c", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "module_serial", "hour", "received_at", name="pk_mbus_temperature_samples"
        ),
    )


def downgrade() -> None:
    op.drop_table("mbus_temperature_samples")
