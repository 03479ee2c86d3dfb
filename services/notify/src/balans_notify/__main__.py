"""Entry point: ``python -m balans_notify`` (``notify`` under ``balans run``)."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
from nats.js.client import JetStreamContext

from balans_core.consumer import ConsumerSpec, JetStreamConsumer
from balans_core.nats import connect_nats
from balans_core.service import ServiceContext, run_service
from balans_notify.mailer import mailer_for
from balans_notify.monthly import MonthlyEmails
from balans_notify.resident_alerts import ResidentAlerts
from balans_notify.resident_valves import ResidentValves
from balans_notify.settings import NotifySettings
from balans_notify.webhooks import WebhookDeliverer, WebhookQueue
from balans_protocol import subjects
from balans_protocol.messages import (
    AlertMessage,
    CommandFinished,
    InvoiceIssued,
    ReadingsStored,
)
from balans_protocol.streams import ensure_streams


def consumers(
    js: JetStreamContext,
    settings: NotifySettings,
    emails: MonthlyEmails,
    alerts: ResidentAlerts,
    valves: ResidentValves,
    queue: WebhookQueue,
) -> list[JetStreamConsumer[Any]]:
    """The monthly e-mails on InvoiceIssued, residents' e-mails on alerts and closed valves
    (CommandFinished); webhooks on invoices, alerts and stored readings."""

    def spec(stream: str, subject: str, durable: str, ack_wait_s: float = 60.0) -> ConsumerSpec:
        return ConsumerSpec(
            service="notify",
            stream=stream,
            subject=subject,
            durable=durable,
            max_ack_pending=8,
            ack_wait_s=ack_wait_s,
            max_deliveries=settings.consumer_max_deliveries,
        )

    # an e-mail may take every SMTP try with its backoff before it is settled
    smtp_s = settings.notify_smtp_attempts * (settings.notify_smtp_timeout_s + 60.0)
    return [
        JetStreamConsumer.each(
            js,
            spec(
                subjects.INVOICES_STREAM,
                subjects.INVOICES_ALL,
                settings.notify_invoice_consumer,
                ack_wait_s=smtp_s,
            ),
            InvoiceIssued,
            emails.handle,
        ),
        JetStreamConsumer.each(
            js,
            spec(
                subjects.INVOICES_STREAM,
                subjects.INVOICES_ALL,
                settings.notify_webhook_invoice_consumer,
            ),
            InvoiceIssued,
            queue.invoice,
        ),
        JetStreamConsumer.each(
            js,
            spec(
                subjects.ALERTS_STREAM,
                subjects.ALERTS_ALL,
                settings.notify_alert_email_consumer,
                ack_wait_s=smtp_s,
            ),
            AlertMessage,
            alerts.handle,
        ),
        JetStreamConsumer.each(
            js,
            spec(
                subjects.ALERTS_STREAM, subjects.ALERTS_ALL, settings.notify_webhook_alert_consumer
            ),
            AlertMessage,
            queue.alert,
        ),
        JetStreamConsumer.each(
            js,
            spec(
                subjects.EVENTS_STREAM,
                subjects.COMMAND_FINISHED_ALL,
                settings.notify_valve_email_consumer,
                ack_wait_s=smtp_s,
            ),
            CommandFinished,
            valves.handle,
        ),
        JetStreamConsumer.each(
            js,
            spec(
                subjects.EVENTS_STREAM,
                subjects.READINGS_STORED_ALL,
                settings.notify_webhook_readings_consumer,
            ),
            ReadingsStored,
            queue.readings,
        ),
    ]


async def serve(ctx: ServiceContext, settings: NotifySettings) -> None:
    """Consume the announcements, send the e-mails, deliver the webhooks until stopped."""
    # the two e-mail consumers and the four deliverer loops each hold one while they send,
    # the webhook queues and the e-mail's reads need the rest
    pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=10)
    nc = await connect_nats(settings.nats_url, "notify")
    client = httpx.AsyncClient(timeout=settings.notify_webhook_timeout_s)
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        mailer = mailer_for(settings)
        emails = MonthlyEmails(pool, nc, mailer, settings)
        alerts = ResidentAlerts(pool, mailer, settings)
        valves = ResidentValves(pool, mailer, settings)
        queue = WebhookQueue(pool, settings.notify_readings_webhook_window_s)
        deliverer = WebhookDeliverer(pool, client, settings)
        ctx.set_ready(smtp=settings.notify_smtp_host or f"maildir {settings.notify_maildir}")
        await ctx.run_until_stopped(
            deliverer.run(ctx.stopping),
            *(c.run(ctx.stopping) for c in consumers(js, settings, emails, alerts, valves, queue)),
        )
    finally:
        await client.aclose()
        await nc.drain()
        await pool.close()


def main() -> None:
    settings = NotifySettings()
    run_service("notify", settings, lambda ctx: serve(ctx, settings))


if __name__ == "__main__":
    main()
