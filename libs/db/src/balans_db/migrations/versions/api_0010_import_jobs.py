"""api: import jobs kept in the database, answered by every api worker

Revision ID: api_0010_import_jobs
Revises: api_0009_readings_webhooks
Create Date: 2026-12-06 22:30:00

Import jobs (``POST /imports``) lived in the memory of the worker that accepted them, so
a poll reaching another worker got a 404 and a restart forgot them. Each job is now a
row: its state, progress, result and problems, the sealed device keys of the
concentrators it created (erased in the statement that hands them out), and a heartbeat
that the running worker renews; a job whose heartbeat stopped is answered as failed (the
import is one transaction, so it wrote nothing).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "api_0010_import_jobs"
down_revision: str | Sequence[str] | None = "api_0009_readings_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "import_jobs",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("started_by", sa.Text(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("buildings", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="queued"),
        sa.Column("done", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("total", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("result", JSONB()),
        sa.Column("problems", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("sealed_keys", JSONB()),
        _now("created_at"),
        _now("updated_at"),
        _now("heartbeat_at"),
        sa.CheckConstraint("status in ('queued', 'running', 'succeeded', 'failed')", name="status"),
    )
    op.create_index("ix_import_jobs_created_at", "import_jobs", ["created_at"])


def downgrade() -> None:
    op.drop_table("import_jobs")
