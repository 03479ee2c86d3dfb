"""Prometheus metrics of the api (bounded labels: route templates, not raw paths)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "balans_api_requests_total",
    "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "balans_api_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
ERRORS = Counter(
    "balans_api_errors_total",
    "Requests that ended in an unexpected server error, by route template.",
    ["route"],
)
LOGINS = Counter("balans_api_logins_total", "Login attempts by outcome.", ["outcome"])
COMMANDS = Counter("balans_api_commands_total", "Downlink commands by final status.", ["status"])
PROVISIONING_REFUSALS = Counter(
    "balans_api_provisioning_refusals_total",
    "Provisioning changes and import documents refused as invalid (422), by what was sent "
    "(building, document).",
    ["what"],
)
IMPORTS = Counter(
    "balans_api_imports_total",
    "Import jobs by outcome (succeeded, failed, error, interrupted).",
    ["outcome"],
)
IMPORT_JOB_WRITE_FAILURES = Counter(
    "balans_api_import_job_write_failures_total",
    "Writes of an import job's row that failed (heartbeat, failure).",
    ["write"],
)
CACHE_RENEWAL_FAILURES = Counter(
    "balans_api_cache_renewal_failures_total",
    "Background renewals of a cached building-wide value that failed (the old value kept "
    "answering).",
)
KEPT_PROFILES = Counter(
    "balans_api_kept_profiles_total",
    "Kept answers of closed months (kept_profiles): requests answered from one (hit) or "
    "computed because none was kept (miss), answers built, invalidated by late data, and "
    "builds discarded because an invalidation came while they read.",
    ["outcome"],
)
KEPT_PROFILE_FAILURES = Counter(
    "balans_api_kept_profile_failures_total",
    "Builds of a building month's kept answers that failed (the month is then computed "
    "live until the next pass builds it).",
)
