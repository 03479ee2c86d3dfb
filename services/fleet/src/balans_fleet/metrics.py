"""The ``balans_fleet_*`` gauges (labels are bounded: utilities, streams, consumers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONCENTRATORS = Gauge("balans_fleet_concentrators", "Concentrators registered.")
CONCENTRATORS_SILENT = Gauge(
    "balans_fleet_concentrators_silent",
    "Concentrators with no module status for longer than BALANS_FLEET_SILENT_AFTER_HOURS.",
)
MODULES_REPORTING = Gauge(
    "balans_fleet_modules_reporting",
    "Radio modules with a status inside BALANS_FLEET_BATTERY_LOOKBACK_HOURS.",
)
MODULES_LOW_BATTERY = Gauge(
    "balans_fleet_modules_low_battery",
    "Reporting radio modules whose latest battery voltage is below BALANS_FLEET_LOW_BATTERY_MV.",
)
ESTIMATED_SHARE = Gauge(
    "balans_fleet_estimated_share",
    "Share (0-1) of hourly meter consumption values that are estimated, recent window.",
    ["utility"],
)
STREAM_MESSAGES = Gauge(
    "balans_fleet_jetstream_stream_messages", "Messages held by a JetStream stream.", ["stream"]
)
STREAM_BYTES = Gauge(
    "balans_fleet_jetstream_stream_bytes", "Bytes held by a JetStream stream.", ["stream"]
)
STREAM_MAX_MESSAGES = Gauge(
    "balans_fleet_jetstream_stream_max_messages",
    "Message limit of a JetStream stream (-1: unlimited).",
    ["stream"],
)
STREAM_MAX_BYTES = Gauge(
    "balans_fleet_jetstream_stream_max_bytes",
    "Byte limit of a JetStream stream (-1: unlimited).",
    ["stream"],
)
CONSUMER_PENDING = Gauge(
    "balans_fleet_jetstream_consumer_pending",
    "Messages of the stream not yet delivered to a durable consumer.",
    ["stream", "consumer"],
)
CONSUMER_ACK_PENDING = Gauge(
    "balans_fleet_jetstream_consumer_ack_pending",
    "Messages delivered to a durable consumer and not yet acknowledged.",
    ["stream", "consumer"],
)
CONSUMER_LAG_SECONDS = Gauge(
    "balans_fleet_jetstream_consumer_lag_seconds",
    "Age of the oldest message a durable consumer has not acknowledged (0 when caught up).",
    ["stream", "consumer"],
)
REFRESH_ERRORS = Counter(
    "balans_fleet_refresh_errors_total",
    "Refreshes of one source that failed (logged with the error).",
    ["source"],
)
REFRESH_SECONDS = Histogram(
    "balans_fleet_refresh_seconds", "Time to refresh one source.", ["source"]
)
LAST_REFRESH = Gauge(
    "balans_fleet_last_refresh_timestamp_seconds",
    "Unix time of the last successful refresh of one source.",
    ["source"],
)
