"""The one shape of every service's outbox table, for the migrations that create them.

Each service that announces after a commit owns an outbox (``<service>_outbox``, declared
with :func:`balans_db.tables.base.outbox_table`); their migrations create the same table under
different names, so they share this. Migrations are history: change this only together
with a new migration that brings existing outboxes to the new shape.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql


def create_outbox_table(table: str) -> None:
    """An outbox: announcements written in the change's transaction, sent by the relay."""
    op.create_table(
        table,
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text())),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("msg_id", name=op.f(f"uq_{table}_msg_id")),
    )
    op.create_index(
        f"ix_{table}_unsent", table, ["id"], postgresql_where=sa.text("sent_at is null")
    )
