"""allocation: hourly meter consumption, per-flat heat and its explanation trail

Revision ID: allocation_0001
Revises: 0001_core
Create Date: 2026-11-27 17:45:00

``meter_consumption`` and ``heat_allocation`` are the contract with balance and billing
(see docs/allocation.md for the meaning of every ``flags`` bit). Both are partitioned by
month on ``hour`` like the readings, with no foreign keys on the hourly series (bulk
writes; rows of a deleted meter or flat are dropped by the service). The two small
tables keep what the explanation trail and the watermark need.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "allocation_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("allocation",)
depends_on: str | Sequence[str] | None = None

HOURLY = ("meter_consumption", "heat_allocation")


def upgrade() -> None:
    op.create_table(
        "meter_consumption",
        sa.Column("meter_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("estimated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("flags", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("meter_id", "hour", name=op.f("pk_meter_consumption")),
        sa.CheckConstraint("unit in ('kWh', 'm3')", name=op.f("ck_meter_consumption_unit")),
        sa.CheckConstraint("value >= 0", name=op.f("ck_meter_consumption_value_not_negative")),
        postgresql_partition_by="RANGE (hour)",
    )
    op.create_table(
        "heat_allocation",
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("flat_id", sa.Integer(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measured_kwh", sa.Float(), nullable=False),
        sa.Column("estimated", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("common_kwh", sa.Float(), nullable=False),
        sa.Column("total_kwh", sa.Float(), nullable=False),
        sa.Column("flags", sa.Integer(), server_default="0", nullable=False),
        # explanation trail: what produced measured_kwh (null where the layout has no such input)
        sa.Column("method", sa.Text(), nullable=False),
        sa.Column("volume_m3", sa.Float()),
        sa.Column("delta_t_k", sa.Float()),
        sa.Column("k_kwh_per_m3k", sa.Float()),
        # heat moved by the methodology beyond the common share (minimum charge, caps)
        sa.Column("adjustment_kwh", sa.Float(), server_default="0", nullable=False),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("flat_id", "hour", name=op.f("pk_heat_allocation")),
        postgresql_partition_by="RANGE (hour)",
    )
    op.create_index("ix_heat_allocation_building_hour", "heat_allocation", ["building_id", "hour"])
    op.create_table(
        "allocation_building_hours",
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey(
                "buildings.id",
                name=op.f("fk_allocation_building_hours_building_id_buildings"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("building_kwh", sa.Float(), nullable=False),
        sa.Column("flats_measured_kwh", sa.Float(), nullable=False),
        sa.Column("common_kwh", sa.Float(), nullable=False),
        sa.Column("estimated_area_fraction", sa.Float(), nullable=False),
        sa.Column("flags", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "methodology",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("revision", sa.Integer(), server_default="1", nullable=False),
        sa.Column(
            "computed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("building_id", "hour", name=op.f("pk_allocation_building_hours")),
    )
    op.create_table(
        "allocation_watermarks",
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey(
                "buildings.id",
                name=op.f("fk_allocation_watermarks_building_id_buildings"),
                ondelete="CASCADE",
            ),
            nullable=False,
        ),
        sa.Column("complete_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("building_id", name=op.f("pk_allocation_watermarks")),
    )
    for table in HOURLY:
        op.execute(f"create table {table}_default partition of {table} default")
        op.execute(
            f"select balans_ensure_partitions('{table}', date '2025-01-01', date '2028-01-01')"
        )


def downgrade() -> None:
    op.drop_table("allocation_watermarks")
    op.drop_table("allocation_building_hours")
    op.drop_index("ix_heat_allocation_building_hour", table_name="heat_allocation")
    for table in HOURLY:
        op.drop_table(table)
