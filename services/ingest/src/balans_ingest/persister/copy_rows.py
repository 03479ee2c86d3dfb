"""UPLOAD sections -> PostgreSQL binary COPY data for the readings tables, with numpy.

The fixed-size records of a section are read as one numpy structured array straight from
the wire bytes; each readings table gets its columns converted in bulk and written as
one binary COPY buffer. No Python object is made per reading, which is what lets the
persister keep up with COPY itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from balans_protocol.records import TAMPER_FLAG, RecordType, numpy_fields

PG_EPOCH_UNIX = 946_684_800  # 2000-01-01T00:00:00Z, the zero of PostgreSQL timestamps
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)

Columns = dict[str, np.ndarray]


def pg_timestamp(ts_unix: np.ndarray) -> np.ndarray:
    """Unix seconds -> PostgreSQL timestamptz (microseconds since 2000-01-01 UTC)."""
    return (ts_unix.astype(np.int64) - PG_EPOCH_UNIX) * 1_000_000


@dataclass(frozen=True)
class TableLayout:
    """How one record type becomes rows of one readings table."""

    table: str
    wire: np.dtype  # the record as it is on the wire (records.WIRE_FIELDS)
    columns: tuple[tuple[str, str], ...]  # (column, big-endian numpy type of its COPY value)
    convert: Callable[[np.ndarray], Columns]

    def copy_data(self, records: np.ndarray) -> bytes:
        """Binary COPY data (header, one tuple per record, trailer)."""
        values = self.convert(records)
        fields: list[tuple[str, str]] = [("n", ">i2")]
        for name, pg_type in self.columns:
            fields += [(f"{name}_len", ">i4"), (name, pg_type)]
        rows = np.empty(len(records), dtype=np.dtype(fields))
        rows["n"] = len(self.columns)
        for name, pg_type in self.columns:
            rows[f"{name}_len"] = np.dtype(pg_type).itemsize
            rows[name] = values[name]
        return COPY_HEADER + rows.tobytes() + COPY_TRAILER

    @property
    def column_names(self) -> list[str]:
        return [name for name, _ in self.columns]


LAYOUTS: dict[RecordType, TableLayout] = {
    RecordType.PULSE: TableLayout(
        "pulse_readings",
        np.dtype(numpy_fields(RecordType.PULSE)),
        (("module_serial", ">i8"), ("input", ">i2"), ("ts", ">i8"), ("count", ">i8")),
        lambda r: {
            "module_serial": r["module"],
            "input": r["input"],
            "ts": pg_timestamp(r["ts"]),
            "count": r["count"],
        },
    ),
    RecordType.TEMPERATURE: TableLayout(
        "temperature_readings",
        np.dtype(numpy_fields(RecordType.TEMPERATURE)),
        (
            ("module_serial", ">i8"),
            ("ts", ">i8"),
            ("supply_centi_c", ">i4"),
            ("return_centi_c", ">i4"),
        ),
        lambda r: {
            "module_serial": r["module"],
            "ts": pg_timestamp(r["ts"]),
            "supply_centi_c": r["supply"],
            "return_centi_c": r["return"],
        },
    ),
    RecordType.STATUS: TableLayout(
        "module_status",
        np.dtype(numpy_fields(RecordType.STATUS)),
        (
            ("module_serial", ">i8"),
            ("ts", ">i8"),
            ("battery_mv", ">i4"),
            ("rssi_dbm", ">i2"),
            ("hops", ">i2"),
            ("parent_serial", ">i8"),
            ("tamper", "u1"),
            ("error_bits", ">i4"),
        ),
        lambda r: {
            "module_serial": r["module"],
            "ts": pg_timestamp(r["ts"]),
            "battery_mv": r["battery_mv"],
            "rssi_dbm": r["rssi_dbm"],
            "hops": r["hops"],
            "parent_serial": r["parent"],
            "tamper": r["flags"] & TAMPER_FLAG,
            "error_bits": r["error_bits"],
        },
    ),
    RecordType.EVENT: TableLayout(
        "module_events",
        np.dtype(numpy_fields(RecordType.EVENT)),
        (("module_serial", ">i8"), ("ts", ">i8"), ("code", ">i4")),
        lambda r: {"module_serial": r["module"], "ts": pg_timestamp(r["ts"]), "code": r["code"]},
    ),
}


def wire_records(record_type: RecordType, payload: memoryview) -> np.ndarray:
    """The records of a fixed-size section as a structured array (no copy)."""
    return np.frombuffer(payload, dtype=LAYOUTS[record_type].wire)


def concatenate(parts: Sequence[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
