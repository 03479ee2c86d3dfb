"""api account periods, owner accounts and verification intervals (issue 15, points 3 and 4)

Revision ID: api_0007_account_periods
Revises: api_0006_channel_periods
Create Date: 2026-12-06 19:00:00

- ``accounts.closed_on``: an account holds its flat from ``opened_on`` (inclusive) to
  ``closed_on`` (exclusive; open while null), in local days of the building's site. A tenant
  change closes one account and opens the next on the same day.
- ``accounts.opened_on`` becomes nullable without a default: null means "since the flat's
  metering began". Until now it was the day the row was written, not a move-in, so the
  rows written so far are set to null (their holders are taken to have held the flat from
  the start, as billing did).
- ``accounts.building_id`` and a nullable ``flat_id``: an account without a flat is its
  building's **owner account** (at most one per building), billed for vacant flats under
  the methodology's vacant-flat rule. A flat account has ``flat_id`` and no ``building_id``.
- ``meters.verification_interval_years``: the meter's re-verification interval; null means
  the default of its utility (``BALANS_VERIFICATION_INTERVAL_YEARS``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0007_account_periods"
down_revision: str | Sequence[str] | None = "api_0006_channel_periods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("closed_on", sa.Date()))
    op.alter_column("accounts", "opened_on", nullable=True, server_default=None)
    op.execute("update accounts set opened_on = null")
    op.add_column("accounts", sa.Column("building_id", sa.Integer()))
    op.create_foreign_key(
        op.f("fk_accounts_building_id_buildings"),
        "accounts",
        "buildings",
        ["building_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.alter_column("accounts", "flat_id", nullable=True)
    op.create_check_constraint(
        op.f("ck_accounts_flat_or_owner"), "accounts", "(flat_id is null) <> (building_id is null)"
    )
    op.create_check_constraint(
        op.f("ck_accounts_period"),
        "accounts",
        "closed_on is null or opened_on is null or closed_on > opened_on",
    )
    op.create_index(
        "uq_accounts_owner_building",
        "accounts",
        ["building_id"],
        unique=True,
        postgresql_where=sa.text("building_id is not null"),
    )
    op.add_column("meters", sa.Column("verification_interval_years", sa.SmallInteger()))
    op.create_check_constraint(
        op.f("ck_meters_verification_interval"),
        "meters",
        "verification_interval_years is null or verification_interval_years between 1 and 50",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_meters_verification_interval"), "meters", type_="check")
    op.drop_column("meters", "verification_interval_years")
    op.execute("delete from accounts where flat_id is null")
    op.drop_index("uq_accounts_owner_building", table_name="accounts")
    op.drop_constraint(op.f("ck_accounts_period"), "accounts", type_="check")
    op.drop_constraint(op.f("ck_accounts_flat_or_owner"), "accounts", type_="check")
    op.alter_column("accounts", "flat_id", nullable=False)
    op.drop_column("accounts", "building_id")
    op.execute("update accounts set opened_on = current_date where opened_on is null")
    op.alter_column("accounts", "opened_on", nullable=False, server_default=sa.text("CURRENT_DATE"))
    op.drop_column("accounts", "closed_on")
