"""balance: alerts, imbalance series with their bands, outdoor temperatures, forecasts

Revision ID: balance_0001
Revises: 0001_core
Create Date: 2026-11-27 17:50:00

``alerts`` is read and updated (acknowledge, resolve) by the api; at most one alert per
cause is open at a time (partial unique index on ``cause_key``). ``imbalance_series``
keeps every hourly, daily and monthly figure of a group with the normal band it was
judged against, so a chart can draw series and band together. See docs/balance.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "balance_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("balance",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("cause_key", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), server_default="open", nullable=False),
        sa.Column("severity", sa.Text(), server_default="warning", nullable=False),
        sa.Column("building_id", sa.Integer(), sa.ForeignKey("buildings.id", ondelete="CASCADE")),
        sa.Column(
            "group_id", sa.Integer(), sa.ForeignKey("balance_groups.id", ondelete="SET NULL")
        ),
        sa.Column("meter_id", sa.Integer(), sa.ForeignKey("meters.id", ondelete="SET NULL")),
        sa.Column("module_serial", sa.BigInteger()),
        sa.Column("first_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "opened_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column(
            "evidence",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("acknowledged_by", sa.Text()),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column("resolved_by", sa.Text()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.CheckConstraint("state in ('open', 'closed')", name=op.f("ck_alerts_state")),
        sa.CheckConstraint(
            "severity in ('info', 'warning', 'critical')", name=op.f("ck_alerts_severity")
        ),
    )
    op.create_index(
        "uq_alerts_open_cause",
        "alerts",
        ["cause_key"],
        unique=True,
        postgresql_where=sa.text("state = 'open'"),
    )
    op.create_index("ix_alerts_building_state", "alerts", ["building_id", "state"])
    op.create_table(
        "imbalance_series",
        sa.Column(
            "group_id",
            sa.Integer(),
            sa.ForeignKey("balance_groups.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("resolution", sa.Text(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("balance_value", sa.Float(), nullable=False),
        sa.Column("subscribers_value", sa.Float(), nullable=False),
        sa.Column("expected_loss", sa.Float(), server_default="0", nullable=False),
        sa.Column("imbalance", sa.Float(), nullable=False),
        sa.Column("band_median", sa.Float()),
        sa.Column("band_low", sa.Float()),
        sa.Column("band_high", sa.Float()),
        sa.Column("night", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("coverage", sa.Float(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint(
            "group_id", "resolution", "period_start", name=op.f("pk_imbalance_series")
        ),
        sa.CheckConstraint(
            "resolution in ('hour', 'day', 'month')", name=op.f("ck_imbalance_series_resolution")
        ),
    )
    op.create_table(
        "outdoor_temperatures",
        sa.Column(
            "site_id", sa.Integer(), sa.ForeignKey("sites.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("temp_c", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("site_id", "hour", name=op.f("pk_outdoor_temperatures")),
    )
    op.create_table(
        "forecasts",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("consumed_to_date", sa.Float(), nullable=False),
        sa.Column("forecast_total", sa.Float(), nullable=False),
        sa.Column("hdd_to_date", sa.Float(), nullable=False),
        sa.Column("hdd_month", sa.Float(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("scope", "scope_id", "month", name=op.f("pk_forecasts")),
        sa.CheckConstraint("scope in ('meter', 'group')", name=op.f("ck_forecasts_scope")),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
    op.drop_table("outdoor_temperatures")
    op.drop_table("imbalance_series")
    op.drop_index("ix_alerts_building_state", table_name="alerts")
    op.drop_index("uq_alerts_open_cause", table_name="alerts")
    op.drop_table("alerts")
