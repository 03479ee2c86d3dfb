"""allocation: each meter's consumption per local day; a flat's hours read from the index

Revision ID: allocation_0004
Revises: allocation_0003
Create Date: 2026-12-06 20:00:00

``meter_consumption_days`` holds, per meter and local day of its site, the sum of its
``meter_consumption`` hours, how many hours there are and whether any is estimated.
Allocation rebuilds the days it touches in the transaction that writes (or, after a meter
exchange recorded late, deletes) the hours, so a day is always the sum of its hours. Filled
here from the hours already stored.

``ix_heat_allocation_flat_hour_total`` carries a flat's ``total_kwh`` and ``estimated``
beside its (flat, hour) key: a month of a flat's hours is read from about five index pages
(an index-only scan) instead of ~720 heap pages scattered by the building-hour writes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "allocation_0004"
down_revision: str | Sequence[str] | None = "allocation_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "meter_consumption_days",
        sa.Column("meter_id", sa.Integer(), primary_key=True),
        sa.Column("day", sa.Date(), primary_key=True),
        sa.Column("building_id", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_meter_consumption_days_building_day", "meter_consumption_days", ["building_id", "day"]
    )
    op.execute(
        """insert into meter_consumption_days (meter_id, day, building_id, value, hours,
                                               estimated)
           select c.meter_id, (c.hour at time zone s.timezone)::date, min(m.building_id),
                  sum(c.value), count(*), bool_or(c.estimated)
           from meter_consumption c join meters m on m.id = c.meter_id
           join buildings b on b.id = m.building_id join sites s on s.id = b.site_id
           group by 1, 2"""
    )
    op.create_index(
        "ix_heat_allocation_flat_hour_total",
        "heat_allocation",
        ["flat_id", "hour"],
        postgresql_include=["total_kwh", "estimated"],
    )


def downgrade() -> None:
    op.drop_index("ix_heat_allocation_flat_hour_total", table_name="heat_allocation")
    op.drop_table("meter_consumption_days")
