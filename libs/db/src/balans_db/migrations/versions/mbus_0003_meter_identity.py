"""mbus: a standard meter's full M-Bus identity (version and medium), set by provisioning

Revision ID: mbus_0003
Revises: mbus_0002
Create Date: 2026-12-06 19:05:00

EN 13757 addresses a meter by manufacturer, identification number, version and device
type (medium). ``mbus_meters`` kept only the first two; the world document now registers
a meter with all four (docs/provisioning.md, "Standard M-Bus meters"), and telegrams whose
version or medium differ from the registered ones are refused (docs/mbus.md). Both are
optional: null accepts any.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "mbus_0003"
down_revision: str | Sequence[str] | None = "mbus_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("mbus_meters", sa.Column("version", sa.SmallInteger()))
    op.add_column("mbus_meters", sa.Column("medium", sa.SmallInteger()))
    for column in ("version", "medium"):
        op.create_check_constraint(
            op.f(f"ck_mbus_meters_{column}"), "mbus_meters", f"{column} between 0 and 255"
        )


def downgrade() -> None:
    for column in ("medium", "version"):
        op.drop_constraint(op.f(f"ck_mbus_meters_{column}"), "mbus_meters", type_="check")
        op.drop_column("mbus_meters", column)
