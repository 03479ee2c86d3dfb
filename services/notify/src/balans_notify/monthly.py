"""Sends each account's monthly e-mail once (:mod:`balans_notify.once`), when billing
announces its month's invoice; a failed send is redelivered with the consumer's backoff
and dead-lettered after ``BALANS_CONSUMER_MAX_DELIVERIES``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from nats.aio.client import Client as NatsClient

from balans_db.queries import allocation, api, billing
from balans_i18n.catalogs import DEFAULT_LOCALE
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.monthly_message import MonthlyInfo, compose
from balans_notify.once import send_once
from balans_notify.settings import NotifySettings
from balans_protocol import subjects
from balans_protocol.messages import InvoiceDocumentReply, InvoiceDocumentRequest, InvoiceIssued

log = structlog.get_logger("notify")

KIND = "monthly"


def _not_sent_because(
    issued: InvoiceIssued,
    invoice: asyncpg.Record | None,
    recipient: asyncpg.Record | None,
    max_age: timedelta,
) -> str | None:
    if invoice is None or (invoice["account_id"], invoice["period_start"]) != (
        issued.account_id,
        issued.period_start,
    ):
        return "unknown_invoice"  # not this database's invoice (a replayed foreign message)
    if invoice["issued_at"] < datetime.now(UTC) - max_age:
        return "too_old"
    if recipient is None:
        return "unknown_account"
    if not recipient["email"]:
        return "no_email"
    if not recipient["monthly_email"]:
        return "opted_out"
    return None


class MonthlyEmails:
    def __init__(
        self, pool: asyncpg.Pool, nc: NatsClient, mailer: Mailer, settings: NotifySettings
    ) -> None:
        self.pool = pool
        self.nc = nc
        self.mailer = mailer
        self.settings = settings

    async def _pdf(self, invoice_id: int, locale: str) -> bytes:
        """The invoice's PDF from billing. Billing not answering raises a NATS error (the
        announcement is redelivered without limit, the e-mail waits); a refusal raises
        (redelivered, then a dead letter to replay once billing renders again)."""
        ask = InvoiceDocumentRequest(invoice_id=invoice_id, format="pdf", locale=locale)
        msg = await self.nc.request(
            subjects.BILLING_DOCUMENT,
            ask.model_dump_json().encode(),
            timeout=self.settings.notify_document_timeout_s,
        )
        reply = InvoiceDocumentReply.model_validate_json(msg.data)
        if reply.status != "done":
            raise RuntimeError(f"billing did not render invoice {invoice_id}: {reply.detail}")
        return base64.b64decode(reply.content_b64)

    async def _info(
        self, issued: InvoiceIssued, invoice: asyncpg.Record, recipient: asyncpg.Record
    ) -> MonthlyInfo:
        tz = recipient["timezone"]
        month = issued.period_start.astimezone(ZoneInfo(tz)).date().replace(day=1)
        figures = await allocation.flat_statement(
            self.pool,
            recipient["flat_id"],
            recipient["building_id"],
            recipient["rooms"],
            month,
            tz,
            datetime.now(UTC),
        )
        return MonthlyInfo(issued.account_id, month, recipient, figures, invoice)

    async def handle(self, issued: InvoiceIssued) -> None:
        if issued.kind != "invoice":
            metrics.EMAILS.labels(KIND, "correction").inc()
            return
        invoice = await self.pool.fetchrow(billing.INVOICES + " where id = $1", issued.invoice_id)
        recipient = await api.monthly_recipient(self.pool, issued.account_id)
        max_age = timedelta(days=self.settings.notify_monthly_max_age_days)
        outcome = _not_sent_because(issued, invoice, recipient, max_age)
        if outcome is not None:
            metrics.EMAILS.labels(KIND, outcome).inc()
            return
        locale = recipient["language"] or DEFAULT_LOCALE
        info = await self._info(issued, invoice, recipient)
        message = compose(
            info, locale, self.settings.notify_mail_from, self.settings.notify_portal_url
        )
        if self.settings.notify_attach_invoice_pdf:
            message.add_attachment(
                await self._pdf(issued.invoice_id, locale),
                maintype="application",
                subtype="pdf",
                filename=f"invoice-{invoice['number']}.pdf",
            )
        sent = await send_once(
            self.pool,
            self.mailer,
            message,
            account_id=issued.account_id,
            period_start=issued.period_start,
            kind=KIND,
            language=locale,
            metric=KIND,
            invoice_id=issued.invoice_id,
        )
        if not sent:
            return
        log.info(
            "monthly e-mail sent",
            account_id=issued.account_id,
            month=f"{info.month:%Y-%m}",
            language=locale,
        )
