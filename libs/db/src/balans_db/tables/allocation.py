"""Hourly consumption and per-flat heat (migration ``allocation_0001``), heat per local
day (``allocation_0003``), consumption per local day (``allocation_0004``), the sensor
pairs whose hours are estimated after a faulty_sensor alert (``allocation_0005``).

Owned by allocation. ``meter_consumption`` and ``heat_allocation`` are partitioned by
month on ``hour`` with no foreign keys (bulk writes); the meaning of every ``flags`` bit
is in docs/allocation.md. Other services read them through
:mod:`balans_db.queries.allocation`.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from balans_db.tables.base import created_now, metadata, outbox_table

OWNER = "allocation"

meter_consumption = sa.Table(
    "meter_consumption",
    metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
    sa.CheckConstraint("unit in ('kWh', 'm3')", name="unit"),
    sa.CheckConstraint("value >= 0", name="value_not_negative"),
    postgresql_partition_by="RANGE (hour)",
)

heat_allocation = sa.Table(
    "heat_allocation",
    metadata,
    sa.Column("building_id", sa.Integer, nullable=False),
    sa.Column("flat_id", sa.Integer, nullable=False),
    sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("measured_kwh", sa.Float, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("common_kwh", sa.Float, nullable=False),
    sa.Column("total_kwh", sa.Float, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
    # explanation trail: what produced measured_kwh (null where the layout has no such input)
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("volume_m3", sa.Float),
    sa.Column("delta_t_k", sa.Float),
    sa.Column("k_kwh_per_m3k", sa.Float),
    # heat moved by the methodology beyond the common share (minimum charge, caps)
    sa.Column("adjustment_kwh", sa.Float, nullable=False, server_default="0"),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    created_now("computed_at"),
    # a flat's month of hours from ~5 pages of its key (index-only scan, allocation_0007)
    sa.PrimaryKeyConstraint("flat_id", "hour", postgresql_include=["total_kwh", "estimated"]),
    sa.Index("ix_heat_allocation_building_hour", "building_id", "hour"),
    postgresql_partition_by="RANGE (hour)",
)

# a flat's heat per local day of its site (allocation_0003): rebuilt from heat_allocation
# for every day an allocation touches, in the same transaction, so it is always their sum;
# read for day and month series instead of a day's 23 to 25 rows
heat_allocation_days = sa.Table(
    "heat_allocation_days",
    metadata,
    sa.Column("flat_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("building_id", sa.Integer, nullable=False),
    sa.Column("total_kwh", sa.Float, nullable=False),
    sa.Column("hours", sa.Integer, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False),
    postgresql_with={"fillfactor": 50},  # hourly updates stay on their page (allocation_0006)
)

# a meter's consumption per local day of its site (allocation_0004): rebuilt from
# meter_consumption for every day an allocation writes or deletes hours of, in the same
# transaction, so it is always their sum; a day left without hours is removed
meter_consumption_days = sa.Table(
    "meter_consumption_days",
    metadata,
    sa.Column("meter_id", sa.Integer, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("building_id", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Column("hours", sa.Integer, nullable=False),
    sa.Column("estimated", sa.Boolean, nullable=False),
    sa.Index("ix_meter_consumption_days_building_day", "building_id", "day"),
    postgresql_with={"fillfactor": 50},  # hourly updates stay on their page (allocation_0006)
)

allocation_building_hours = sa.Table(
    "allocation_building_hours",
    metadata,
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("building_kwh", sa.Float, nullable=False),
    sa.Column("flats_measured_kwh", sa.Float, nullable=False),
    sa.Column("common_kwh", sa.Float, nullable=False),
    sa.Column("estimated_area_fraction", sa.Float, nullable=False),
    sa.Column("flags", sa.Integer, nullable=False, server_default="0"),
    sa.Column("methodology", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
    created_now("computed_at"),
)

allocation_watermarks = sa.Table(
    "allocation_watermarks",
    metadata,
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("complete_until", sa.DateTime(timezone=True), nullable=False),
    created_now("updated_at"),
)

# a faulty_sensor alert of balance, as allocation follows it (allocation_0005): the pair
# whose temperatures are estimated over [first_hour, last_hour] (last_hour null: still
# open), how (``cascade``: from its neighbours along a single-pipe riser; ``history``: its
# ΔT against its peers' before the fault) with the fitted coefficients, and the flats
# whose heat rests on the pair; ``dismissed`` (a false alarm): the hours are measured again
allocation_sensor_estimates = sa.Table(
    "allocation_sensor_estimates",
    metadata,
    sa.Column("alert_id", sa.BigInteger, primary_key=True),
    sa.Column("building_id", sa.ForeignKey("buildings.id", ondelete="CASCADE"), nullable=False),
    sa.Column("module_serial", sa.BigInteger, nullable=False),
    sa.Column("sensor", sa.Text, nullable=False),
    sa.Column("shape", sa.Text, nullable=False),
    sa.Column("flat_ids", ARRAY(sa.Integer), nullable=False),
    sa.Column("first_hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_hour", sa.DateTime(timezone=True)),
    sa.Column("method", sa.Text, nullable=False),
    sa.Column("coefficients", JSONB, nullable=False),
    sa.Column("dismissed", sa.Boolean, nullable=False, server_default=sa.false()),
    created_now("updated_at"),
    sa.CheckConstraint("sensor in ('supply', 'return', 'pair')", name="sensor"),
    sa.CheckConstraint("method in ('cascade', 'history')", name="method"),
    sa.Index("ix_allocation_sensor_estimates_building", "building_id"),
)

# AllocationComputed announcements (migration ``allocation_0002``)
allocation_outbox = outbox_table("allocation_outbox")
