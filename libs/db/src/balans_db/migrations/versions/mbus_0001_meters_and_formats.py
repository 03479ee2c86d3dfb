"""mbus: standard M-Bus meters mapped to balans meters, and learnt compact-frame formats

Revision ID: mbus_0001
Revises: 0001_core
Create Date: 2026-11-27 18:30:00

A meter that speaks EN 13757 (Kamstrup, Diehl, Zenner, ...) is known by its M-Bus address
(manufacturer, 8-digit id). ``mbus_meters`` maps that address to a row of ``meters`` and to
the virtual radio module whose readings carry its registers (so allocation, balance and
billing read it like a D100FC channel), with its AES-128 key sealed by KeyVault.
``mbus_formats`` keeps the DIF/VIF header sequences learnt from full frames, so compact
frames decode after a restart too. See docs/mbus.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mbus_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("mbus",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mbus_meters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "meter_id",
            sa.Integer(),
            sa.ForeignKey("meters.id", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        sa.Column("manufacturer", sa.Text(), nullable=False),
        sa.Column("device_id", sa.Text(), nullable=False),
        sa.Column(
            "module_serial",
            sa.BigInteger(),
            sa.ForeignKey("radio_modules.serial", ondelete="CASCADE"),
            nullable=False,
            unique=True,
        ),
        # AES-GCM(nonce || ciphertext) of the meter's AES-128 key under the master key
        sa.Column("key_ciphertext", sa.LargeBinary()),
        sa.Column(
            "registered_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.UniqueConstraint("manufacturer", "device_id", name="uq_mbus_meters_address"),
        sa.CheckConstraint("manufacturer ~ '^[@A-Z]{3}$'", name="ck_mbus_meters_manufacturer"),
        sa.CheckConstraint("device_id ~ '^[0-9A-F]{8}$'", name="ck_mbus_meters_device_id"),
    )
    op.create_table(
        "mbus_formats",
        sa.Column("signature", sa.Integer(), primary_key=True),
        sa.Column("headers", sa.LargeBinary(), nullable=False),
        sa.Column(
            "learnt_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("signature between 0 and 65535", name="ck_mbus_formats_signature"),
    )


def downgrade() -> None:
    op.drop_table("mbus_formats")
    op.drop_table("mbus_meters")
