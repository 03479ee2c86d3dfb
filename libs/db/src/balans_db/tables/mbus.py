"""Standard M-Bus meters and learnt compact-frame formats (migrations ``mbus_0001``,
``mbus_0002``, ``mbus_0003``).

Owned by mbus, the library ingest's persister decodes M-Bus telegrams with. A meter is
known by its M-Bus address (manufacturer, 8-digit id) and mapped to a row of ``meters``
and the virtual radio module whose readings carry its registers. See docs/mbus.md.
"""

from __future__ import annotations

import sqlalchemy as sa

from balans_db.tables.base import created_now, metadata

OWNER = "mbus"

mbus_meters = sa.Table(
    "mbus_meters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column(
        "meter_id", sa.ForeignKey("meters.id", ondelete="CASCADE"), nullable=False, unique=True
    ),
    sa.Column("manufacturer", sa.Text, nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column(
        "module_serial",
        sa.ForeignKey("radio_modules.serial", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    # AES-GCM(nonce || ciphertext) of the meter's AES-128 key under the master key
    sa.Column("key_ciphertext", sa.LargeBinary),
    created_now("registered_at"),
    # mbus_0003: the rest of the EN 13757 address (null: any); telegrams that differ are refused
    sa.Column("version", sa.SmallInteger),
    sa.Column("medium", sa.SmallInteger),  # device type code, e.g. 0x07 water, 0x02 electricity
    sa.UniqueConstraint("manufacturer", "device_id", name="uq_mbus_meters_address"),
    sa.CheckConstraint("manufacturer ~ '^[@A-Z]{3}$'", name="manufacturer"),
    sa.CheckConstraint("device_id ~ '^[0-9A-F]{8}$'", name="device_id"),
    sa.CheckConstraint("version between 0 and 255", name="version"),
    sa.CheckConstraint("medium between 0 and 255", name="medium"),
)

mbus_temperature_samples = sa.Table(
    "mbus_temperature_samples",
    metadata,
    sa.Column("module_serial", sa.BigInteger, primary_key=True),
    # the reading hour the sample belongs to (top of the hour at or after reception)
    sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("received_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("supply_centi_c", sa.Integer, nullable=False),
    sa.Column("return_centi_c", sa.Integer, nullable=False),
)

mbus_formats = sa.Table(
    "mbus_formats",
    metadata,
    sa.Column("signature", sa.Integer, primary_key=True),
    sa.Column("headers", sa.LargeBinary, nullable=False),
    created_now("learnt_at"),
    sa.CheckConstraint("signature between 0 and 65535", name="signature"),
)
