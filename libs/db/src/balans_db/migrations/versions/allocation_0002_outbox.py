"""allocation: the outbox of AllocationComputed

Revision ID: allocation_0002
Revises: allocation_0001
Create Date: 2026-12-06 17:00:00

Every ``AllocationComputed`` (new hours, recomputed hours) is written here in the
transaction of the change it announces and published by allocation's relay
(``balans_core.outbox``) until JetStream acknowledges it, with ``Nats-Msg-Id`` =
``msg_id``; ``sent_at`` is set after the acknowledgement. A crash after the commit
therefore loses no announcement: the next start sends what was not sent.
"""

from collections.abc import Sequence

from alembic import op

from balans_db.migrations.outbox import create_outbox_table

revision: str = "allocation_0002"
down_revision: str | Sequence[str] | None = "allocation_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "allocation_outbox"


def upgrade() -> None:
    create_outbox_table(TABLE)


def downgrade() -> None:
    op.drop_table(TABLE)
