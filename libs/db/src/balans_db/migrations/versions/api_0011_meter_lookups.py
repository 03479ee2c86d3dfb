"""api: meters found by flat and by building through an index

Revision ID: api_0011_meter_lookups
Revises: api_0010_import_jobs
Create Date: 2026-12-06 22:40:00

A flat's month profile, its card and the exchange markers ask for the meters of one flat,
the degree-day forecast and the overview for those of one building; without an index each
was a sequential scan of every meter (10 000 in the api benchmark: most of a profile's
database time).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "api_0011_meter_lookups"
down_revision: str | Sequence[str] | None = "api_0010_import_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_meters_flat_id", "meters", ["flat_id"])
    op.create_index("ix_meters_building_id", "meters", ["building_id"])


def downgrade() -> None:
    op.drop_index("ix_meters_building_id", "meters")
    op.drop_index("ix_meters_flat_id", "meters")
