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

from alembic import op

from balans_db.migrations.outbox import create_outbox_table

revision: str = "api_0005_outbox"
down_revision: str | Sequence[str] | None = "api_0004_login_attempts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "api_outbox"


def upgrade() -> None:
    create_outbox_table(TABLE)


def downgrade() -> None:
    op.drop_table(TABLE)
