"""api: login attempts per client address, shared by every api worker

Revision ID: api_0004_login_attempts
Revises: api_0003_provisioning
Create Date: 2026-12-06 17:00:00

The per-client login limit (``BALANS_LOGIN_RATE``, a moving window) was counted in each
process's memory, so N workers allowed N times the rate. Each attempt is now a row; an
attempt is allowed while the client has fewer rows than the limit within the window, and
rows older than the window are deleted as logins come.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "api_0004_login_attempts"
down_revision: str | Sequence[str] | None = "api_0003_provisioning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_login_attempts_client_at", "login_attempts", ["client", "at"])
    op.create_index("ix_login_attempts_at", "login_attempts", ["at"])


def downgrade() -> None:
    op.drop_table("login_attempts")
