"""api: the user's language and monthly e-mail choice, integrators' webhook subscriptions

Revision ID: api_0008_webhooks_and_language
Revises: api_0007_account_periods
Create Date: 2026-12-06 19:00:00

``users.language`` (ro, ru, en; null: the browser's choice) is the portal's language for a
signed-in user and the language of the e-mails notify sends to the user's account;
``users.monthly_email`` is the resident's opt-out of the monthly consumption e-mail.
``webhook_subscriptions`` are the integrators' endpoints notify delivers events to
(docs/api.md, "Webhooks").
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "api_0008_webhooks_and_language"
down_revision: str | Sequence[str] | None = "api_0007_account_periods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENTS = ("invoice.issued", "alert.opened", "alert.resolved")


def upgrade() -> None:
    op.add_column("users", sa.Column("language", sa.Text()))
    op.add_column(
        "users",
        sa.Column("monthly_email", sa.Boolean(), nullable=False, server_default=sa.true()),
    )
    # named "language": the metadata's naming convention makes it ck_users_language
    op.create_check_constraint(
        "language", "users", "language is null or language in ('ro', 'ru', 'en')"
    )
    op.create_table(
        "webhook_subscriptions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", ARRAY(sa.Text()), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "events <@ array[" + ", ".join(repr(e) for e in EVENTS) + "]::text[]"
            " and cardinality(events) > 0",
            name="ck_webhook_subscriptions_events",
        ),
    )


def downgrade() -> None:
    op.drop_table("webhook_subscriptions")
    op.drop_constraint(op.f("ck_users_language"), "users")
    op.drop_column("users", "monthly_email")
    op.drop_column("users", "language")
