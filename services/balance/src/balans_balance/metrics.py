"""Prometheus metrics of the balance service (names ``balans_balance_...``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

GROUP_REQUESTS = Counter(
    "balans_balance_group_requests_total",
    "Group-editing requests answered, by operation and outcome.",
    ["op", "outcome"],
)
ALERT_ACTIONS = Counter(
    "balans_balance_alert_actions_total",
    "Operators' alert actions (acknowledge, resolve) answered, by action and outcome.",
    ["action", "outcome"],
)
INVALID_MESSAGES = Counter(
    "balans_balance_invalid_messages_total",
    "NATS messages that failed validation, by subject family.",
    ["family"],
)
ALERT_TRANSITIONS = Counter(
    "balans_balance_alert_transitions_total",
    "Alerts opened, updated or closed, by kind and transition.",
    ["kind", "transition"],
)
ANALYSIS_ERRORS = Counter(
    "balans_balance_analysis_errors_total",
    "Building analyses that failed (logged with the building id).",
)
ANALYSIS_SECONDS = Histogram(
    "balans_balance_analysis_seconds",
    "Time to analyse one building (imbalance, bands, detectors, alerts).",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
ALERTS_OPEN = Gauge(
    "balans_balance_alerts_open",
    "Alerts open, by kind (every building's; counted at most every 15 s, after an analysis).",
    ["kind"],
)
GROUPS_EVALUATED = Counter(
    "balans_balance_groups_evaluated_total",
    "Balance groups whose imbalance was computed and judged against its band.",
)
TOPOLOGY_EVENTS = Counter(
    "balans_balance_topology_events_total",
    "TopologyChanged events handled, by outcome (followed, unknown_building).",
    ["outcome"],
)
WINDOW_READS = Counter(
    "balans_balance_window_reads_total",
    "Building windows read for an analysis, by how: incremental (the new hours), late (from "
    "an earlier hour recomputed or with late rows), or in full and why (missing, "
    "world_changed, nothing_to_keep, window_longer).",
    ["read"],
)
ANALYSES = Counter(
    "balans_balance_analyses_total",
    "Building events by whether the detectors ran on them and why: turn (the building's "
    "hour in balance_analysis_every_hours), missing (no kept window), overdue (the turn fell "
    "in a gap), every_hour; or deferred (the event waits for the turn).",
    ["when"],
)
WINDOWS_KEPT = Gauge(
    "balans_balance_windows_kept",
    "Buildings whose analysis window this process keeps between events.",
)
STORED_READINGS = Counter(
    "balans_balance_stored_readings_events_total",
    "The persister's ReadingsStored events, by what they did to the building's kept window: "
    "late (it holds some of their hours: read again on the turn), ahead (hours it does not "
    "hold yet: the allocation event brings them) or unkept (no window: read in full).",
    ["outcome"],
)
