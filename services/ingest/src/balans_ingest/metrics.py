"""Prometheus metrics of ingest and the persister (labels are bounded enums)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTIONS = Gauge("balans_ingest_open_connections", "Open concentrator connections.")
CONNECTIONS_TOTAL = Counter("balans_ingest_connections_total", "Concentrator connections accepted.")
SESSIONS_TOTAL = Counter(
    "balans_ingest_sessions_total", "Connections that completed the HELLO handshake."
)
HELLO_REPLAYS = Counter(
    "balans_ingest_hello_replays_total",
    "HELLOs refused because their nonce opened an earlier session (a recorded HELLO replayed).",
)
HELLO_PROOF_FAILURES = Counter(
    "balans_ingest_hello_proof_failures_total",
    "HELLOs whose sender did not prove the key after the server's challenge, by reason "
    "(bad_tag, not_authenticated, bad_format, no_proof); nothing of the live session changed.",
    ["reason"],
)
PREVIOUS_KEY_HELLOS = Counter(
    "balans_ingest_previous_key_hellos_total",
    "HELLOs accepted under a concentrator's previous key, inside a key rotation's overlap.",
)
FRAMES = Counter("balans_ingest_frames_total", "Frames received, by frame type.", ["type"])
RECORDS = Counter(
    "balans_ingest_records_total", "Records in accepted UPLOADs, by record type.", ["type"]
)
BYTES = Counter("balans_ingest_bytes_total", "Bytes of frames received.")
ERRORS = Counter(
    "balans_ingest_errors_total",
    "Refused frames and dropped connections, by reason (NACK reason or idle_timeout).",
    ["reason"],
)
DUPLICATES = Counter(
    "balans_ingest_duplicate_uploads_total",
    "UPLOADs whose message id JetStream already had (ACKed, not stored again), by concentrator "
    "and kind: resend (harmless), or reset (a new batch of a concentrator that reused its boot "
    "counter: its readings are lost).",
    ["concentrator", "kind"],
)
PUBLISH_SECONDS = Histogram(
    "balans_ingest_publish_seconds",
    "Time from publishing an UPLOAD to JetStream's ack.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
REFUSED = Counter(
    "balans_ingest_refused_uploads_total",
    "UPLOADs NACKed as implausible (nothing stored), by check: future, too_old, "
    "unregistered_module.",
    ["check"],
)
COMMANDS = Counter("balans_ingest_commands_total", "Downlink commands, by outcome.", ["status"])

# UPLOAD messages consumed: balans_persister_messages_total{consumer, outcome}, counted by
# balans_core.consumer
PERSISTER_ROWS = Counter(
    "balans_persister_rows_total", "Reading rows written, by table.", ["table"]
)
PERSISTER_FALLBACKS = Counter(
    "balans_persister_conflict_fallbacks_total",
    "Batches that met an existing row and were rewritten with ON CONFLICT DO NOTHING.",
)
PERSISTER_ERRORS = Counter(
    "balans_persister_errors_total", "Persister failures, by kind.", ["kind"]
)
PERSISTER_REFUSED = Counter(
    "balans_persister_refused_messages_total",
    "UPLOAD messages terminated unstored as implausible, by check (as ingest's).",
    ["check"],
)
PERSISTER_RAW_TELEGRAMS = Counter(
    "balans_persister_raw_telegrams_total", "RAW_TELEGRAM records seen, by outcome.", ["outcome"]
)
PERSISTER_BATCH_SECONDS = Histogram(
    "balans_persister_batch_seconds",
    "Time to write and commit one batch of messages.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
