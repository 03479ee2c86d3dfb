"""balance: the outbox of alert transitions

Revision ID: balance_0002
Revises: balance_0001
Create Date: 2026-12-06 17:00:00

Every alert transition (``AlertMessage`` opened, updated, closed) is written here in the
transaction of the change it announces and published by balance's relay
(``balans_core.outbox``) until JetStream acknowledges it, with ``Nats-Msg-Id`` =
``msg_id``; ``sent_at`` is set after the acknowledgement. A crash after the commit
therefore loses no announcement: the next start sends what was not sent.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "balance_0002"
down_revision: str | Sequence[str] | None = "balance_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "balance_outbox"


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
