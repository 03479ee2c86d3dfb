"""Prometheus metrics of the billing service (names ``balans_billing_...``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RUNS = Counter(
    "balans_billing_runs_total",
    "Billing runs of a building and period, by trigger and outcome",
    ["trigger", "outcome"],  # trigger: period_closed|allocation|request; outcome: ok|rejected|error
)
ISSUED = Counter(
    "balans_billing_invoices_issued_total",
    "Invoices and corrections written",
    ["kind"],  # invoice|correction
)
RUN_SECONDS = Histogram(
    "balans_billing_run_seconds",
    "Time to bill one building for one period",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
INVALID_MESSAGES = Counter(
    "balans_billing_invalid_messages_total",
    "Messages refused by validation at the boundary",
    ["source"],  # request|document|tariff (JetStream events are counted by balans_core.consumer)
)
DOCUMENTS = Counter(
    "balans_billing_documents_total",
    "Invoice documents rendered on request, by format and outcome",
    ["format", "outcome"],  # html|pdf; done|not_found|failed
)
TARIFF_VERSIONS = Counter(
    "balans_billing_tariff_versions_total",
    "New tariff versions asked for over NATS, by outcome",
    ["outcome"],  # done|invalid|conflict|failed
)
PERIODS_CLOSED = Counter(
    "balans_billing_periods_closed_total",
    "Building months announced as closed (PeriodClosed published) by the period closer",
)
CLOSER_PASSES = Counter(
    "balans_billing_period_closer_passes_total",
    "Passes of the period closer over all buildings, by outcome",
    ["outcome"],  # ok|error
)
