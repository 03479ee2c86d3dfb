"""Prometheus metrics of M-Bus telegram handling (counted wherever telegrams are stored)."""

from __future__ import annotations

from prometheus_client import Counter

TELEGRAMS = Counter(
    "balans_mbus_telegrams_total",
    "Raw M-Bus telegrams handled, by outcome: stored, unknown_meter (no meter registered "
    "at that address), other_building (a meter of another building than the forwarding "
    "concentrator's), identity_mismatch (version or medium differ from the registered "
    "ones), no_register, or the decode failure code (see balans_mbus.model.DecodeFailure: "
    "bad_mac, decryption_failed, ... for a wrong key).",
    ["outcome"],
)
READINGS = Counter(
    "balans_mbus_readings_total",
    "Readings written from M-Bus telegrams, by kind (pulse, temperature).",
    ["kind"],
)
KEYS_UNREADABLE = Counter(
    "balans_mbus_keys_unreadable_total",
    "Sealed M-Bus meter keys the master key could not open (wrong BALANS_MASTER_KEY?).",
)
