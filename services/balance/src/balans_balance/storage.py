"""balance's own tables (migration ``balance_0001``) as SQLAlchemy Core, for queries.

The migration is the source of truth; these mirror it. The world model (groups,
meters...) lives in :mod:`balans_db.schema`; the hourly consumption read here belongs
to allocation (``meter_consumption``, ``heat_allocation``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("cause_key", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="open"),
    sa.Column("severity", sa.Text, nullable=False, server_default="warning"),
    sa.Column("building_id", sa.Integer),
    sa.Column("group_id", sa.Integer),
    sa.Column("meter_id", sa.Integer),
    sa.Column("module_serial", sa.BigInteger),
    sa.Column("first_hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_hour", sa.DateTime(timezone=True), nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("evidence", JSONB, nullable=False),
    sa.Column("acknowledged_by", sa.Text),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by", sa.Text),
)

imbalance_series = sa.Table(
    "imbalance_series",
    metadata,
    sa.Column("group_id", sa.Integer, primary_key=True),
    sa.Column("resolution", sa.Text, primary_key=True),
    sa.Column("period_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("unit", sa.Text, nullable=False),
    sa.Column("balance_value", sa.Float, nullable=False),
    sa.Column("subscribers_value", sa.Float, nullable=False),
    sa.Column("expected_loss", sa.Float, nullable=False),
    sa.Column("imbalance", sa.Float, nullable=False),
    sa.Column("band_median", sa.Float),
    sa.Column("band_low", sa.Float),
    sa.Column("band_high", sa.Float),
    sa.Column("night", sa.Boolean, nullable=False),
    sa.Column("coverage", sa.Float, nullable=False),
)

outdoor_temperatures = sa.Table(
    "outdoor_temperatures",
    metadata,
    sa.Column("site_id", sa.Integer, primary_key=True),
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
)
