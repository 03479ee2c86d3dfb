"""The ``balans_notify_*`` metrics (labels are bounded: outcomes, events)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

EMAILS = Counter(
    "balans_notify_emails_total",
    "E-mails to residents by kind (monthly, alert) and outcome: sent, duplicate (already "
    "sent for the account and period or alert), "
    "no_email (the account has none), opted_out, correction (not a monthly invoice), "
    "unknown_account, unknown_invoice, too_old (issued before BALANS_NOTIFY_MONTHLY_MAX_AGE_"
    "DAYS), not_for_residents (an alert of no flat meter, or not one residents act on), "
    "failed (SMTP refused or unreachable after every try; redelivered).",
    ["kind", "outcome"],
)
SMTP_ERRORS = Counter(
    "balans_notify_smtp_errors_total", "Failed SMTP tries (each try of each e-mail)."
)
WEBHOOKS_QUEUED = Counter(
    "balans_notify_webhooks_queued_total", "Webhook deliveries queued, by event.", ["event"]
)
WEBHOOK_ATTEMPTS = Counter(
    "balans_notify_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered, failed (retried later), dead (the last "
    "attempt failed).",
    ["outcome"],
)
WEBHOOK_SECONDS = Histogram(
    "balans_notify_webhook_seconds", "Time a webhook endpoint took to answer."
)
DELIVERER_ERRORS = Counter(
    "balans_notify_deliverer_errors_total",
    "Passes of the webhook deliverer that failed (database unreachable...); logged.",
)
