"""allocation: heat_allocation's primary key carries total_kwh and estimated; one index less

Revision ID: allocation_0007
Revises: allocation_0006
Create Date: 2026-12-07 12:00:00

``ix_heat_allocation_flat_hour_total`` (allocation_0004) had the primary key's own keys,
``(flat_id, hour)``, with ``total_kwh`` and ``estimated`` carried beside them for
index-only reads of a flat's hours. The primary key now carries them itself (``INCLUDE``)
and the second index is dropped: every new flat-hour wrote an entry into both, each on a
page of its own (a flat's hours are spread over the whole month's index), so an hour of
allocation dirtied and logged twice the pages for one lookup path. The same reads are
index-only scans of the primary key now (``EXPLAIN``: ``Index Only Scan using
heat_allocation_yYYYYmMM_pkey``), and the upsert's conflict target is unchanged.

The key is rebuilt on every partition in the migration's transaction (a table lock while
it runs). On a large production table build the new unique index per partition with
``CREATE UNIQUE INDEX CONCURRENTLY`` first (docs/operations.md, PostgreSQL).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "allocation_0007"
down_revision: str | Sequence[str] | None = "allocation_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("alter table heat_allocation drop constraint pk_heat_allocation")
    op.execute("drop index ix_heat_allocation_flat_hour_total")
    op.execute(
        "alter table heat_allocation add constraint pk_heat_allocation"
        " primary key (flat_id, hour) include (total_kwh, estimated)"
    )


def downgrade() -> None:
    op.execute("alter table heat_allocation drop constraint pk_heat_allocation")
    op.execute(
        "alter table heat_allocation add constraint pk_heat_allocation primary key (flat_id, hour)"
    )
    op.create_index(
        "ix_heat_allocation_flat_hour_total",
        "heat_allocation",
        ["flat_id", "hour"],
        postgresql_include=["total_kwh", "estimated"],
    )
