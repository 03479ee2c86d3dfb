"""Sends each account's monthly e-mail once (:mod:`balans_notify.once`), when billing
announces its month's invoice; a failed send is redelivered with the consumer's backoff
and dead-lettered after ``BALANS_CONSUMER_MAX_DELIVERIES``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from balans_db.queries import allocation, api, billing
from balans_i18n.catalogs import DEFAULT_LOCALE
from balans_notify import metrics
from balans_notify.mailer import Mailer
from balans_notify.monthly_message import MonthlyInfo, compose
from balans_notify.once import send_once
from balans_notify.settings import NotifySettings
from balans_protocol.messages import InvoiceIssued

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
    def __init__(self, pool: asyncpg.Pool, mailer: Mailer, settings: NotifySettings) -> None:
        self.pool = pool
        self.mailer = mailer
        self.settings = settings

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
