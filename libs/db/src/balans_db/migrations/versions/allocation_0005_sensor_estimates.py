"""allocation: the sensor pairs whose hours are estimated after a faulty_sensor alert

Revision ID: allocation_0005
Revises: allocation_0004
Create Date: 2026-12-06 22:00:00

``allocation_sensor_estimates`` holds, per faulty_sensor alert of balance, the pair whose
temperatures allocation estimates over ``[first_hour, last_hour]`` (``last_hour`` null
while the alert is open), how (``cascade`` or ``history``) with the fitted coefficients,
the flats whose heat rests on the pair, and whether an operator dismissed the alert as a
false alarm (then the hours are measured again). docs/allocation.md, "Faulty sensors".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "allocation_0005"
down_revision: str | Sequence[str] | None = "allocation_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "allocation_sensor_estimates",
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey(
                "buildings.id",
                name=op.f("fk_allocation_sensor_estimates_building_id_buildings"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("module_serial", sa.BigInteger(), nullable=False),
        sa.Column("sensor", sa.Text(), nullable=False),
        sa.Column("shape", sa.Text(), nullable=False),
        sa.Column("flat_ids", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("first_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_hour", sa.DateTime(timezone=True)),
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("coefficients", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("dismissed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "sensor in ('supply', 'return', 'pair')",
            name=op.f("ck_allocation_sensor_estimates_sensor"),
        ),
        sa.CheckConstraint(
            "method in ('cascade', 'history')", name=op.f("ck_allocation_sensor_estimates_method")
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_allocation_sensor_estimates")),
    )
    op.create_index(
        "ix_allocation_sensor_estimates_building", "allocation_sensor_estimates", ["building_id"]
    )


def downgrade() -> None:
    op.drop_table("allocation_sensor_estimates")
