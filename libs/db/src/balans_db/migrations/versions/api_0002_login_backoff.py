"""api: per-user login backoff

Revision ID: api_0002
Revises: api_0001
Create Date: 2026-12-06 16:40:00

``failed_logins`` counts a user's failed logins since the last good one; past a few, each
failure sets ``login_delay_until`` further off (doubling, capped), and the api refuses that
user's logins until then without checking the password. A delay, never a lock-out: it
ends by itself, a good login resets both, an admin clears them (``/users/{id}/unlock``).
Stored with the user so every api process applies the same delay.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0002"
down_revision: str | Sequence[str] | None = "api_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "users",
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("users", sa.Column("login_delay_until", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("users", "login_delay_until")
    op.drop_column("users", "failed_logins")
