"""api: a building's radio modules found through an index

Revision ID: api_0012_radio_module_lookup
Revises: api_0011_meter_lookups
Create Date: 2026-12-06 23:00:00

The operator's overview counts a building's modules, the silent ones and those with a low
battery: three sequential scans of every module without an index (about 20 ms of a
building's overview with 30 000 modules, the api benchmark's city).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "api_0012_radio_module_lookup"
down_revision: str | Sequence[str] | None = "api_0011_meter_lookups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_radio_modules_building_id", "radio_modules", ["building_id"])


def downgrade() -> None:
    op.drop_index("ix_radio_modules_building_id", "radio_modules")
