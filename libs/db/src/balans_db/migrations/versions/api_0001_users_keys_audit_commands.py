"""api: users, integrator API keys, the audit log and downlink commands

Revision ID: api_0001
Revises: 0001_core
Create Date: 2026-11-27 17:50:00

``users`` carry one role (admin, operator, manager, consumer); a consumer is bound to
one account and sees only that account's flat. ``api_keys`` store a SHA-256 of the
random secret (keys are 256-bit random, so a slow hash buys nothing) and their scopes.
``audit_log`` records every command and admin change; ``commands`` tracks a valve or
relay command from the request to the concentrator's reply.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "api_0001"
down_revision: str | Sequence[str] | None = "0001_core"
branch_labels: str | Sequence[str] | None = ("api",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.Text(), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column(
            "account_id",
            sa.Integer(),
            sa.ForeignKey("accounts.id", name="fk_users_account_id_accounts", ondelete="CASCADE"),
        ),
        sa.Column("full_name", sa.Text(), nullable=False, server_default=""),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.UniqueConstraint("username", name="uq_users_username"),
        sa.CheckConstraint(
            "role in ('admin', 'operator', 'manager', 'consumer')", name="ck_users_role"
        ),
        sa.CheckConstraint(
            "(role = 'consumer') = (account_id is not null)", name="ck_users_consumer_account"
        ),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("secret_sha256", sa.LargeBinary(), nullable=False),
        sa.Column("scopes", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "created_by",
            sa.Integer(),
            sa.ForeignKey("users.id", name="fk_api_keys_created_by_users", ondelete="SET NULL"),
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "commands",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column(
            "meter_id",
            sa.Integer(),
            sa.ForeignKey("meters.id", name="fk_commands_meter_id_meters", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("module_serial", sa.BigInteger(), nullable=False),
        sa.Column("concentrator_serial", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("detail", sa.Text(), nullable=False, server_default=""),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status in ('pending', 'done', 'failed', 'offline', 'timeout')",
            name="ck_commands_status",
        ),
    )
    op.create_index("ix_commands_meter_created", "commands", ["meter_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_commands_meter_created", table_name="commands")
    op.drop_table("commands")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_keys")
    op.drop_table("users")
