"""partitioned tables without a default partition

Revision ID: 0002_core_partitions
Revises: 0001_core
Create Date: 2026-12-06 16:20:00

A row dated outside every monthly partition used to land in ``<table>_default``, and
then creating that month's partition failed ("updated partition constraint for default
partition would be violated"): one reading dated in the future blocked ``balans db
partitions``, ``migrate`` and ``run`` from that month on. Now ingest and the persister refuse
readings outside the legal window (``BALANS_READINGS_HORIZON_DAYS`` back to now plus the
clock-skew allowance), the monthly partitions cover that window, and there is no default
partition: a row outside every partition fails to insert instead of hiding.

Each default partition is detached. Its rows of a month a reading may legally have now (the
horizon's default of 400 days back to an hour ahead) move into their monthly partitions
(created if missing). Anything left is impossible data: an empty default is dropped, a
non-empty one is kept, detached, as ``<table>_out_of_range`` for an operator to inspect
(docs/operations.md, "Partitions"). Allocation watermarks past the present (the same
future-dated readings moved them) are brought back to the present hour.
"""

from collections.abc import Sequence
from datetime import date

import sqlalchemy as sa
from alembic import op

revision: str = "0002_core_partitions"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "allocation_0001"

# table -> its partition key column
PARTITIONED = {
    "pulse_readings": "ts",
    "temperature_readings": "ts",
    "module_status": "ts",
    "module_events": "ts",
    "meter_consumption": "hour",
    "heat_allocation": "hour",
}
HORIZON_DAYS = 400  # the default of BALANS_READINGS_HORIZON_DAYS when this was written


def _exists(name: str) -> bool:
    return (
        op.get_bind().execute(sa.text("select to_regclass(:n)"), {"n": name}).scalar() is not None
    )


def _retire_default(table: str, column: str) -> None:
    default = f"{table}_default"
    if not _exists(default):
        return
    bind = op.get_bind()
    op.execute(f"alter table {table} detach partition {default}")
    legal = (
        f"{column} >= now() - interval '{HORIZON_DAYS} days'"
        f" and {column} <= now() + interval '1 hour'"
    )
    first, last = bind.execute(
        sa.text(f"select min({column}), max({column}) from {default} where {legal}")
    ).one()
    if first is not None:
        after_last = date(last.year + last.month // 12, last.month % 12 + 1, 1)
        bind.execute(
            sa.text("select balans_ensure_partitions(:t, :a, :b)"),
            {"t": table, "a": first.date(), "b": after_last},
        )
        op.execute(
            f"insert into {table} select * from {default} where {legal} on conflict do nothing"
        )
        op.execute(f"delete from {default} where {legal}")
    if bind.execute(sa.text(f"select exists (select from {default})")).scalar():
        op.execute(f"alter table {default} rename to {table}_out_of_range")
    else:
        op.execute(f"drop table {default}")


def upgrade() -> None:
    for table, column in PARTITIONED.items():
        _retire_default(table, column)
    op.execute(
        """update allocation_watermarks set complete_until = date_trunc('hour', now())
           where complete_until > now()"""
    )


def downgrade() -> None:
    for table in PARTITIONED:
        kept = f"{table}_out_of_range"
        if _exists(kept):
            op.execute(f"alter table {kept} rename to {table}_default")
            op.execute(f"alter table {table} attach partition {table}_default default")
        else:
            op.execute(f"create table {table}_default partition of {table} default")
