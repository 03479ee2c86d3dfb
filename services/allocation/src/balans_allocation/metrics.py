"""Prometheus metrics of the allocation service (names ``balans_allocation_...``); the
consumed events are counted by :mod:`balans_core.consumer`
(``balans_allocation_messages_total{consumer, outcome}``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FLAT_HOURS = Counter(
    "balans_allocation_flat_hours_total",
    "heat_allocation rows written, by kind (new, recomputed: an earlier figure changed).",
    ["kind"],
)
FLAGGED_FLAT_HOURS = Counter(
    "balans_allocation_flagged_flat_hours_total",
    "Computed flat-hours carrying a flag, by flag name (see docs/allocation.md).",
    ["flag"],
)
COMPUTE_SECONDS = Histogram(
    "balans_allocation_compute_seconds",
    "Time to compute and store one batch of buildings' ranges of hours.",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REFUSED_EVENTS = Counter(
    "balans_allocation_refused_events_total",
    "ReadingsStored events acked without computing: their first hour lies outside the "
    "window readings may have (future, too_old).",
    ["check"],
)
BATCH_BUILDINGS = Histogram(
    "balans_allocation_batch_buildings",
    "Buildings computed together in one batch (one transaction, one query per kind).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SENSOR_ALERTS = Counter(
    "balans_allocation_sensor_alerts_total",
    "faulty_sensor alert announcements followed, by outcome (estimated: a pair's hours "
    "estimated; ended: measured again after the fault's last hour; dismissed: a false alarm, "
    "measured again; unchanged; ignored).",
    ["outcome"],
)
DAYS_WRITTEN = Counter(
    "balans_allocation_days_written_total",
    "Buildings whose day rollups a batch wrote, by how (extended: the one new hour added "
    "to each day's sum; rebuilt: each touched day summed again from its hours).",
    ["how"],
)
