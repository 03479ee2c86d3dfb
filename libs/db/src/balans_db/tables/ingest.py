"""The readings as the concentrators sent them (migration ``0001_core``).

Owned by ingest (its persister writes them; the simulator's fast path writes them through
:func:`balans_db.queries.ingest.insert_readings`). Partitioned by month on ``ts``, one
unique key each, so a re-delivered batch is harmless.
"""

from __future__ import annotations

import sqlalchemy as sa

from balans_db.tables.base import metadata

OWNER = "ingest"

pulse_readings = sa.Table(
    "pulse_readings",
    metadata,
    sa.Column("module_serial", sa.BigInteger, primary_key=True),
    sa.Column("input", sa.SmallInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    postgresql_partition_by="RANGE (ts)",
)

temperature_readings = sa.Table(
    "temperature_readings",
    metadata,
    sa.Column("module_serial", sa.BigInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("supply_centi_c", sa.Integer, nullable=False),
    sa.Column("return_centi_c", sa.Integer, nullable=False),
    postgresql_partition_by="RANGE (ts)",
)

module_status = sa.Table(
    "module_status",
    metadata,
    sa.Column("module_serial", sa.BigInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("battery_mv", sa.Integer, nullable=False),
    sa.Column("rssi_dbm", sa.SmallInteger, nullable=False),
    sa.Column("hops", sa.SmallInteger, nullable=False),
    sa.Column("parent_serial", sa.BigInteger, nullable=False),
    sa.Column("tamper", sa.Boolean, nullable=False),
    sa.Column("error_bits", sa.Integer, nullable=False),
    postgresql_partition_by="RANGE (ts)",
)

module_events = sa.Table(
    "module_events",
    metadata,
    sa.Column("module_serial", sa.BigInteger, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("code", sa.Integer, primary_key=True),
    postgresql_partition_by="RANGE (ts)",
)
