"""Settings of notify (environment prefix ``BALANS_``, fields ``notify_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from balans_core.settings import CommonSettings


class NotifySettings(CommonSettings):
    """Where e-mails go (an SMTP server, else a local Maildir), how sending and webhook
    deliveries are retried, and the consumer names."""

    notify_smtp_host: str | None = Field(
        None,
        description="SMTP server of the monthly e-mails. Unset: each e-mail is written to the "
        "Maildir BALANS_NOTIFY_MAILDIR instead (the default of make run: nothing leaves the "
        "machine).",
    )
    notify_smtp_port: int = Field(25, description="SMTP port (587 with STARTTLS, 465 TLS).")
    notify_smtp_tls: bool = Field(
        False, description="Connect with TLS (port 465); otherwise STARTTLS when offered."
    )
    notify_smtp_username: str | None = Field(None, description="SMTP login, when needed.")
    notify_smtp_password: str | None = Field(None, description="SMTP password, when needed.")
    notify_smtp_timeout_s: float = Field(30.0, gt=0, description="SMTP connect/send timeout.")
    notify_smtp_attempts: int = Field(
        4,
        ge=1,
        description="Tries of one e-mail before the announcement is redelivered later (and "
        "dead-lettered after BALANS_CONSUMER_MAX_DELIVERIES).",
    )
    notify_smtp_backoff_s: float = Field(
        1.0, gt=0, description="Wait after the first failed try; doubles with each try."
    )
    notify_maildir: Path = Field(
        Path(".balans/mail"), description="Maildir the e-mails go to when no SMTP host is set."
    )
    notify_mail_from: str = Field(
        "balans <noreply@balans.invalid>", description="From: of the e-mails."
    )
    notify_portal_url: str = Field(
        "http://127.0.0.1:8000", description="The portal's address, for links in e-mails."
    )
    notify_attach_invoice_pdf: bool = Field(
        True,
        description="Attach the invoice as PDF to the monthly e-mail, rendered by billing over "
        "NATS (balans.billing.document) in the e-mail's language; while billing does not "
        "answer, the e-mail waits.",
    )
    notify_document_timeout_s: float = Field(
        60.0, gt=0, description="How long billing may take to render an invoice's PDF."
    )
    notify_monthly_max_age_days: float = Field(
        31.0,
        gt=0,
        description="An invoice issued longer ago than this gets no e-mail (a first start "
        "does not mail the year of past months the INVOICES stream keeps).",
    )
    notify_invoice_consumer: str = Field(
        "notify-invoices", description="Durable JetStream consumer name on InvoiceIssued."
    )
    notify_alert_email_consumer: str = Field(
        "notify-alert-emails",
        description="Durable JetStream consumer name e-mailing residents their flat's alerts.",
    )
    notify_valve_email_consumer: str = Field(
        "notify-valve-emails",
        description="Durable JetStream consumer name e-mailing residents their flat's closed "
        "valves (CommandFinished).",
    )
    notify_webhook_readings_consumer: str = Field(
        "notify-webhooks-readings",
        description="Durable JetStream consumer name queuing readings.stored webhooks.",
    )
    notify_readings_webhook_window_s: float = Field(
        900.0,
        gt=0,
        description="A building's readings.stored webhook is sent at most once per window of "
        "this many seconds: the window's stored readings in one delivery, at its end.",
    )
    notify_webhook_invoice_consumer: str = Field(
        "notify-webhooks-invoices",
        description="Durable JetStream consumer name queuing invoice webhooks.",
    )
    notify_webhook_alert_consumer: str = Field(
        "notify-webhooks-alerts",
        description="Durable JetStream consumer name queuing alert webhooks.",
    )
    notify_webhook_timeout_s: float = Field(
        10.0, gt=0, description="How long a webhook endpoint may take to answer."
    )
    notify_webhook_attempts: int = Field(
        8, ge=1, description="Deliveries of one webhook before it is dead (shown by the api)."
    )
    notify_webhook_backoff_s: float = Field(
        10.0, gt=0, description="Wait after the first failed delivery; doubles with each."
    )
    notify_webhook_max_backoff_s: float = Field(
        3600.0, gt=0, description="Longest wait between two deliveries of one webhook."
    )
    notify_webhook_poll_s: float = Field(
        1.0, gt=0, description="How often the deliverer looks for webhooks that are due."
    )
