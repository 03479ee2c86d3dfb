"""allocation: room on the day rollups' pages for their hourly updates

Revision ID: allocation_0006
Revises: allocation_0005
Create Date: 2026-12-07 04:00:00

An hourly event adds its new hour to each flat's and meter's day row (docs/allocation.md,
"Days"): every day row is updated about 24 times. On full pages each new row version went
to another page and into every index of the table; with half of each page left free it
stays on its page as a heap-only update (no index entry), and the dead versions are
pruned there. Measured on 50 buildings' hourly batch (7 500 day rows): the statement took
34-35 ms instead of 49-79 ms. Only pages written from now on keep the room: existing rows
are not rewritten (``VACUUM FULL`` of the two tables would apply it to them).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "allocation_0006"
down_revision: str | Sequence[str] | None = "allocation_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("heat_allocation_days", "meter_consumption_days")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"alter table {table} set (fillfactor = 50)")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"alter table {table} reset (fillfactor)")
