"""Send an e-mail to a resident once: its key (account, period start, kind) is inserted into
``notify_emails`` in the transaction that sends it and committed only after the mail server
accepted the message. A redelivered announcement, a second notify process or a restart
finds the key and sends nothing; a send that fails rolls the key back, so the
announcement's redelivery tries again. Only a crash between the server's acceptance and
the commit sends twice (with the same Message-ID)."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage

import asyncpg

from balans_notify import metrics
from balans_notify.mailer import Mailer

_CLAIM = """insert into notify_emails
  (account_id, period_start, kind, invoice_id, recipient, language, message_id)
values ($1, $2, $3, $4, $5, $6, $7)
on conflict (account_id, period_start, kind) do nothing returning id"""


async def send_once(
    pool: asyncpg.Pool,
    mailer: Mailer,
    message: EmailMessage,
    *,
    account_id: int,
    period_start: datetime,
    kind: str,
    language: str,
    metric: str,
    invoice_id: int | None = None,
) -> bool:
    """Send ``message`` unless its key was sent before; False when it was (counted
    ``duplicate`` under ``metric``, the e-mail's kind in ``balans_notify_emails_total``)."""
    async with pool.acquire() as conn, conn.transaction():
        claimed = await conn.fetchval(
            _CLAIM,
            account_id,
            period_start,
            kind,
            invoice_id,
            message["To"],
            language,
            message["Message-ID"],
        )
        if claimed is None:
            metrics.EMAILS.labels(metric, "duplicate").inc()
            return False
        try:
            await mailer.send(message)
        except Exception:
            metrics.EMAILS.labels(metric, "failed").inc()
            raise
    metrics.EMAILS.labels(metric, "sent").inc()
    return True
