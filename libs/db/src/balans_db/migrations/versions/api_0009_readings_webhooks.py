"""api: integrators may subscribe to readings.stored

Revision ID: api_0009_readings_webhooks
Revises: api_0008_webhooks_and_language
Create Date: 2026-12-06 20:00:00

``webhook_subscriptions.events`` takes ``readings.stored`` (a building's stored readings,
coalesced by notify per window; docs/api.md, "Webhooks").
"""

from collections.abc import Sequence

from alembic import op

revision: str = "api_0009_readings_webhooks"
down_revision: str | Sequence[str] | None = "api_0008_webhooks_and_language"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("invoice.issued", "alert.opened", "alert.resolved")
AFTER = (*BEFORE, "readings.stored")
# api_0008 named it in full, which the metadata's naming convention prefixed again; both
# names are dropped, and "events" becomes ck_webhook_subscriptions_events as the table
# declares it
OLD_NAMES = (
    "ck_webhook_subscriptions_ck_webhook_subscriptions_events",
    "ck_webhook_subscriptions_events",
)


def _check(events: tuple[str, ...]) -> str:
    return (
        "events <@ array[" + ", ".join(repr(e) for e in events) + "]::text[]"
        " and cardinality(events) > 0"
    )


def _replace(events: tuple[str, ...]) -> None:
    for name in OLD_NAMES:
        op.execute(f"alter table webhook_subscriptions drop constraint if exists {name}")
    op.create_check_constraint("events", "webhook_subscriptions", _check(events))


def upgrade() -> None:
    _replace(AFTER)


def downgrade() -> None:
    op.execute("delete from webhook_subscriptions where 'readings.stored' = any(events)")
    _replace(BEFORE)
