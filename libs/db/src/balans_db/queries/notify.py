"""What notify publishes: the webhook delivery log (tables in
:mod:`balans_db.tables.notify`), shown by the api."""

from __future__ import annotations

from balans_db.queries import Db

DELIVERIES = """select id, subscription_id, event_id, event, state, attempts, last_status,
last_error, created_at, next_attempt_at, delivered_at from webhook_deliveries"""
"""A published select for paging: every delivery of every subscription."""


async def delivery_counts(db: Db, subscription_id: int) -> dict[str, int]:
    """state -> deliveries of the subscription (pending, delivered, dead)."""
    rows = await db.fetch(
        """select state, count(*) as n from webhook_deliveries
           where subscription_id = $1 group by state""",
        subscription_id,
    )
    return {row["state"]: row["n"] for row in rows}
