"""Balance groups, alerts, imbalance series, outdoor temperatures and forecasts
(migrations ``0001_core`` for the groups, ``balance_0001`` for the rest).

Owned by balance: it generates the groups from the world, judges them, and opens and
closes alerts. ``imbalance_series`` keeps every hourly, daily and monthly figure of a group
with the normal band it was judged against. Other services read these through
:mod:`balans_db.queries.balance`. See docs/balance.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from balans_db.tables.base import UTILITIES, created_now, metadata, one_of, outbox_table

OWNER = "balance"

GROUP_KINDS = ("branch", "building", "entrance", "riser", "custom")

balance_groups = sa.Table(
    "balance_groups",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("utility", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE")),
    sa.Column("parent_id", sa.ForeignKey("balance_groups.id", ondelete="SET NULL")),
    sa.Column("balance_meter_id", sa.ForeignKey("meters.id", ondelete="SET NULL")),
    # metering coverage and loss target, written by balance (migration ``balance_0003``)
    sa.Column("flats_served", sa.Integer),
    sa.Column("flats_metered", sa.Integer),
    sa.Column("coverage_complete", sa.Boolean),
    sa.Column("loss_target_share", sa.Float),
    sa.CheckConstraint(one_of("utility", UTILITIES), name="utility"),
    sa.CheckConstraint(one_of("kind", GROUP_KINDS), name="kind"),
)

balance_group_members = sa.Table(
    "balance_group_members",
    metadata,
    sa.Column("group_id", sa.ForeignKey("balance_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("meter_id", sa.ForeignKey("meters.id", ondelete="CASCADE"), primary_key=True),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("cause_key", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="open"),
    sa.Column("severity", sa.Text, nullable=False, server_default="warning"),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE")),
    sa.Column("group_id", sa.ForeignKey("balance_groups.id", ondelete="SET NULL")),
    sa.Column("meter_id", sa.ForeignKey("meters.id", ondelete="SET NULL")),
    sa.Column("module_serial", sa.BigInteger),
    sa.Column("first_hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_hour", sa.DateTime(timezone=True), nullable=False),
    created_now("opened_at"),
    created_now("updated_at"),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.Text),
    # when it was confirmed, whether it began before the data read, the one reason that
    # fired (code + params, translatable) (migration ``balance_0003``)
    sa.Column("detected_hour", sa.DateTime(timezone=True)),
    sa.Column("began_before", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reason_code", sa.Text),
    sa.Column("reason_params", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.CheckConstraint("state in ('open', 'closed')", name="state"),
    sa.CheckConstraint("severity in ('info', 'warning', 'critical')", name="severity"),
    # at most one open alert per cause
    sa.Index(
        "uq_alerts_open_cause", "cause_key", unique=True, postgresql_where=sa.text("state = 'open'")
    ),
    sa.Index("ix_alerts_building_state", "building_id", "state"),
)

imbalance_series = sa.Table(
    "imbalance_series",
    metadata,
    sa.Column("group_id", sa.ForeignKey("balance_groups.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("resolution", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("balance_value", sa.Float, nullable=False),
    sa.Column("subscribers_value", sa.Float, nullable=False),
    sa.Column("expected_loss", sa.Float, nullable=False, server_default="0"),
    sa.Column("imbalance", sa.Float, nullable=False),
    sa.Column("band_median", sa.Float),
    sa.Column("band_low", sa.Float),
    sa.Column("band_high", sa.Float),
    sa.Column("night", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("coverage", sa.Float, nullable=False, server_default="1"),
    sa.CheckConstraint("resolution in ('hour', 'day', 'month')", name="resolution"),
)

outdoor_temperatures = sa.Table(
    "outdoor_temperatures",
    metadata,
    sa.Column("site_id", sa.ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("temp_c", sa.Float, nullable=False),
)

forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("scope", sa.Text, primary_key=True),
    sa.Column("scope_id", sa.Integer, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("consumed_to_date", sa.Float, nullable=False),
    sa.Column("forecast_total", sa.Float, nullable=False),
    sa.Column("hdd_to_date", sa.Float, nullable=False),
    sa.Column("hdd_month", sa.Float, nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("scope in ('meter', 'group')", name="scope"),
)

# alert transitions (AlertMessage) announced on balans.alerts.<kind> (migration ``balance_0002``)
balance_outbox = outbox_table("balance_outbox")
