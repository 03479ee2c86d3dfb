"""api: kept answers of closed months (a flat's month profile)

Revision ID: api_0013_kept_profiles
Revises: api_0012_radio_module_lookup
Create Date: 2026-12-07 09:00:00

A closed month's profile of a flat (``GET /flats/{id}/profile?month=``) is built once for
every flat and kept as the bytes the api answers; late data that changes one of its
inputs deletes it (and it is built again). ``kept_profile_months`` counts each building
month's invalidations (``generation``): a build stores its answers only if the count did
not move while it read (docs/api.md, Kept answers).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0013_kept_profiles"
down_revision: str | Sequence[str] | None = "api_0012_radio_module_lookup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kept_profile_months",
        sa.Column(
            "building_id",
            sa.Integer(),
            sa.ForeignKey("buildings.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("generation", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("built_at", sa.DateTime(timezone=True)),
    )
    op.create_table(
        "kept_profiles",
        sa.Column(
            "flat_id",
            sa.Integer(),
            sa.ForeignKey("flats.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("month", sa.Date(), primary_key=True),
        sa.Column("resolution", sa.Text(), primary_key=True),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("resolution in ('hour', 'day')", name="resolution"),
    )
    op.create_index("ix_kept_profiles_building_month", "kept_profiles", ["building_id", "month"])


def downgrade() -> None:
    op.drop_table("kept_profiles")
    op.drop_table("kept_profile_months")
