"""api: the outbox of the api's announcements

Revision ID: api_0005_outbox
Revises: api_0004_login_attempts
Create Date: 2026-12-06 17:25:00

``TopologyChanged`` (after a provisioning change or an import) is written here in the
transaction of the change it announces and sent by the api's relay
(``balans_core.outbox``) until JetStream acknowledges it: a crash after the commit loses
no announcement, and ``balans import`` needs no NATS (the running api sends its rows).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "api_0005_outbox"
down_revision: str | Sequence[str] | None = "api_0004_login_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "api_outbox"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("msg_id", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("headers", postgresql.JSONB(astext_type=sa.Text())),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
        sa.UniqueConstraint("msg_id", name=op.f(f"uq_{TABLE}_msg_id")),
    )
    op.create_index(
        f"ix_{TABLE}_unsent", TABLE, ["id"], postgresql_where=sa.text("sent_at is null")
    )


def downgrade() -> None:
    op.drop_table(TABLE)
