"""Prometheus metrics of the simulator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

HOURS = Counter("balans_sim_hours_total", "Simulated city-hours generated.")
READINGS = Counter(
    "balans_sim_readings_total",
    "Readings generated (pulse, temperature, status) that reached a concentrator.",
)
BATCHES = Counter("balans_sim_batches_total", "Hourly UPLOAD batches queued by concentrators.")
OUTAGES = Counter("balans_sim_outages_total", "Simulated uplink (GPRS) outages.")
COMMANDS = Counter(
    "balans_sim_commands_total",
    "Downlink commands received by simulated concentrators.",
    ["action"],
)
ERRORS = Counter("balans_sim_errors_total", "Failures of the simulation loop, by stage.", ["stage"])
PENDING = Gauge("balans_sim_pending_batches", "Batches waiting for an ACK, all concentrators.")
