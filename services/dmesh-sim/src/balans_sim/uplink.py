"""Readings of a :class:`Chunk` as the wire protocol's records (one batch per building-hour)."""

from __future__ import annotations

from balans_protocol.records import (
    EventRecord,
    PulseRecord,
    Record,
    StatusRecord,
    TemperatureRecord,
)
from balans_sim.engine import Chunk


def hour_records(chunk: Chunk, i: int) -> list[Record]:
    """Everything the concentrator heard for hour ``i`` of the chunk."""
    ts = int(chunk.ts_unix[i])
    out: list[Record] = []
    ok = chunk.pulse_ok[i]
    out += [
        PulseRecord(int(m), int(n), ts, int(c))
        for m, n, c in zip(
            chunk.pulse_module[ok], chunk.pulse_input[ok], chunk.pulse_count[i, ok], strict=True
        )
    ]
    ok = chunk.temp_ok[i]
    out += [
        TemperatureRecord(int(m), ts, int(s), int(r))
        for m, s, r in zip(
            chunk.temp_module[ok],
            chunk.supply_centi_c[i, ok],
            chunk.return_centi_c[i, ok],
            strict=True,
        )
    ]
    ok = chunk.status_ok[i]
    out += [
        StatusRecord(int(m), ts, int(b), int(r), int(h), int(p), bool(t), int(e))
        for m, b, r, h, p, t, e in zip(
            chunk.status_module[ok],
            chunk.battery_mv[i, ok],
            chunk.rssi_dbm[i, ok],
            chunk.hops[i, ok],
            chunk.parent[i, ok],
            chunk.tamper[i, ok],
            chunk.error_bits[i, ok],
            strict=True,
        )
    ]
    out += [EventRecord(m, t, code) for m, t, code in chunk.events if t == ts]
    return out
