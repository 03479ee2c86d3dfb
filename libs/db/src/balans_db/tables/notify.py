"""What notify sent: the monthly e-mails (one per account and period) and the webhook
deliveries with their attempts (migration ``notify_0001``).

Owned by notify. ``notify_emails`` is the idempotency record: its key (account, period)
is claimed in the transaction that sends the message, so a redelivered announcement or a
restarted sender never sends it twice. ``webhook_deliveries`` is the delivery log: one row
per (subscription, event), retried with backoff until delivered or ``dead`` (the dead-letter
list the api shows). See docs/notify.md.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from balans_db.tables.base import created_now, metadata, one_of

OWNER = "notify"

DELIVERY_STATES = ("pending", "delivered", "dead")

notify_emails = sa.Table(
    "notify_emails",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("account_id", sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("invoice_id", sa.BigInteger),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("language", sa.Text, nullable=False),
    sa.Column("message_id", sa.Text, nullable=False),
    created_now("sent_at"),
    sa.UniqueConstraint("account_id", "period_start", "kind", name="uq_notify_emails_key"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "subscription_id",
        sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column("state", sa.Text, nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    created_now("created_at"),
    created_now("next_attempt_at"),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("subscription_id", "event_id", name="uq_webhook_deliveries_event"),
    sa.CheckConstraint(one_of("state", DELIVERY_STATES), name="state"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("state = 'pending'"),
    ),
)
