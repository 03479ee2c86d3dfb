"""Records carried by an UPLOAD frame, and the section layout of an UPLOAD body.

An UPLOAD body is a sequence of *sections*: ``type u8 | count u16 | count records``.
Records of the fixed-size types are packed back to back (big-endian), so a whole section
decodes with one ``struct.iter_unpack`` and the persister can turn it into COPY rows
without a Python loop per record. Consecutive records of one type share a section, so
``decode_records(encode_records(x)) == x`` keeps the order. Timestamps are Unix seconds,
UTC; for readings they are the top of the hour the value belongs to (docs/protocol.md).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from itertools import groupby

from balans_protocol.errors import NackReason, ProtocolError


class RecordType(IntEnum):
    PULSE = 1
    TEMPERATURE = 2
    STATUS = 3
    EVENT = 4
    RAW_TELEGRAM = 5


class Medium(IntEnum):
    """Where a RAW_TELEGRAM was received."""

    WIRED_MBUS = 0
    WIRELESS_MBUS = 1


@dataclass(frozen=True, slots=True)
class PulseRecord:
    """Cumulative pulse register of one module input at the end of an hour."""

    module: int  # u32 radio module serial
    input: int  # u8, 0..5 on a D100FC
    ts_unix: int  # u32
    count: int  # u32 cumulative pulses (wraps at 2**32; allocation handles rollover)


@dataclass(frozen=True, slots=True)
class TemperatureRecord:
    """Hourly mean supply and return temperature of a module's sensor pair."""

    module: int
    ts_unix: int
    supply_centi_c: int  # i16, 0.01 °C
    return_centi_c: int  # i16, 0.01 °C


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """Health of a radio module as the concentrator last heard it."""

    module: int
    ts_unix: int
    battery_mv: int  # u16
    rssi_dbm: int  # i8
    hops: int  # u8
    parent: int  # u32 serial of the module (or 0 = concentrator) it routes through
    tamper: bool  # magnet or opened housing
    error_bits: int  # u16


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An alarm a module raised (valve moved, magnet, leak...)."""

    module: int
    ts_unix: int
    code: int  # u16


@dataclass(frozen=True, slots=True)
class RawTelegramRecord:
    """A wired or wireless M-Bus telegram passed through undecoded (EN 13757)."""

    module: int  # u32 receiving module, 0 = the concentrator's own receiver
    medium: Medium
    received_unix: int  # u32
    rssi_dbm: int  # i8 (0 for wired M-Bus)
    data: bytes  # up to 65535 bytes (the frame size limit applies first)


Record = PulseRecord | TemperatureRecord | StatusRecord | EventRecord | RawTelegramRecord

Fields = tuple[tuple[str, str], ...]  # (wire field name, struct format code), in wire order

# The one definition of each record's bytes (the field names of docs/protocol.md). The
# struct codec below and the persister's numpy dtype (``numpy_fields``) are both made
# from it, so the two readers of the wire cannot drift apart.
WIRE_FIELDS: dict[RecordType, Fields] = {
    RecordType.PULSE: (("module", "I"), ("input", "B"), ("ts", "I"), ("count", "I")),
    RecordType.TEMPERATURE: (("module", "I"), ("ts", "I"), ("supply", "h"), ("return", "h")),
    RecordType.STATUS: (
        ("module", "I"),
        ("ts", "I"),
        ("battery_mv", "H"),
        ("rssi_dbm", "b"),
        ("hops", "B"),
        ("parent", "I"),
        ("flags", "B"),
        ("error_bits", "H"),
    ),
    RecordType.EVENT: (("module", "I"), ("ts", "I"), ("code", "H")),
    # the fixed part of a RAW_TELEGRAM; ``length`` bytes of telegram follow it
    RecordType.RAW_TELEGRAM: (
        ("module", "I"),
        ("medium", "B"),
        ("received", "I"),
        ("rssi_dbm", "b"),
        ("length", "H"),
    ),
}
# struct format code -> numpy type of the same size, signedness and byte order
_NUMPY_TYPES = {"B": "u1", "b": "i1", "H": ">u2", "h": ">i2", "I": ">u4", "i": ">i4"}


def wire_struct(record_type: RecordType) -> struct.Struct:
    """The big-endian ``struct`` layout of a record (of RAW_TELEGRAM: its fixed header)."""
    return struct.Struct(">" + "".join(code for _, code in WIRE_FIELDS[record_type]))


def numpy_fields(record_type: RecordType) -> list[tuple[str, str]]:
    """The record as a numpy structured-dtype spec: ``np.dtype(numpy_fields(t))`` reads a
    section's bytes in place (no padding, big-endian, the same field names as the wire)."""
    return [(name, _NUMPY_TYPES[code]) for name, code in WIRE_FIELDS[record_type]]


SECTION_HEADER = struct.Struct(">BH")
MAX_SECTION_RECORDS = 0xFFFF
PULSE = wire_struct(RecordType.PULSE)
TEMPERATURE = wire_struct(RecordType.TEMPERATURE)
STATUS = wire_struct(RecordType.STATUS)
EVENT = wire_struct(RecordType.EVENT)
RAW_TELEGRAM_HEADER = wire_struct(RecordType.RAW_TELEGRAM)
TAMPER_FLAG = 0x01  # the other status flag bits are reserved: sent as 0, ignored
_MEDIA = frozenset(int(m) for m in Medium)

FIXED_LAYOUTS: dict[RecordType, struct.Struct] = {
    RecordType.PULSE: PULSE,
    RecordType.TEMPERATURE: TEMPERATURE,
    RecordType.STATUS: STATUS,
    RecordType.EVENT: EVENT,
}
_TYPE_OF: dict[type, RecordType] = {
    PulseRecord: RecordType.PULSE,
    TemperatureRecord: RecordType.TEMPERATURE,
    StatusRecord: RecordType.STATUS,
    EventRecord: RecordType.EVENT,
    RawTelegramRecord: RecordType.RAW_TELEGRAM,
}


@dataclass(frozen=True, slots=True)
class Section:
    """``count`` records of one type; ``payload`` is their bytes (no section header)."""

    record_type: RecordType
    count: int
    payload: memoryview


def _pack(record: Record) -> bytes:
    match record:
        case PulseRecord():
            return PULSE.pack(record.module, record.input, record.ts_unix, record.count)
        case TemperatureRecord():
            return TEMPERATURE.pack(
                record.module, record.ts_unix, record.supply_centi_c, record.return_centi_c
            )
        case StatusRecord():
            return STATUS.pack(
                record.module,
                record.ts_unix,
                record.battery_mv,
                record.rssi_dbm,
                record.hops,
                record.parent,
                TAMPER_FLAG if record.tamper else 0,
                record.error_bits,
            )
        case EventRecord():
            return EVENT.pack(record.module, record.ts_unix, record.code)
        case RawTelegramRecord():
            return (
                RAW_TELEGRAM_HEADER.pack(
                    record.module,
                    record.medium,
                    record.received_unix,
                    record.rssi_dbm,
                    len(record.data),
                )
                + record.data
            )
    raise TypeError(f"not a record: {record!r}")


def encode_records(records: Iterable[Record]) -> bytes:
    """The UPLOAD body for ``records`` (runs of one type become one section).

    Raises ``ValueError`` when a field is out of its wire range."""
    out = bytearray()
    for record_type, run in groupby(records, key=lambda r: _TYPE_OF[type(r)]):
        items = list(run)
        for start in range(0, len(items), MAX_SECTION_RECORDS):
            chunk = items[start : start + MAX_SECTION_RECORDS]
            out += SECTION_HEADER.pack(record_type, len(chunk))
            try:
                for record in chunk:
                    out += _pack(record)
            except struct.error as exc:
                raise ValueError(f"{record_type.name} field out of range: {exc}") from exc
    return bytes(out)


def _raw_section_length(body: memoryview, offset: int, count: int) -> int:
    """Bytes taken by ``count`` RAW_TELEGRAM records starting at ``offset``."""
    end = offset
    for _ in range(count):
        if end + RAW_TELEGRAM_HEADER.size > len(body):
            raise ProtocolError(NackReason.BAD_FORMAT, "truncated RAW_TELEGRAM header")
        _, medium, _, _, length = RAW_TELEGRAM_HEADER.unpack_from(body, end)
        if medium not in _MEDIA:
            raise ProtocolError(NackReason.BAD_FORMAT, f"unknown medium {medium}")
        end += RAW_TELEGRAM_HEADER.size + length
    if end > len(body):
        raise ProtocolError(NackReason.BAD_FORMAT, "truncated RAW_TELEGRAM data")
    return end - offset


def split_sections(body: bytes | memoryview) -> list[Section]:
    """Validate an UPLOAD body completely without building record objects.

    Cheap (one step per section, one per RAW_TELEGRAM); raises ``ProtocolError``. A body
    that passes decodes without error (``decode_section`` never raises)."""
    view = memoryview(body)
    sections: list[Section] = []
    offset = 0
    while offset < len(view):
        if offset + SECTION_HEADER.size > len(view):
            raise ProtocolError(NackReason.BAD_FORMAT, "truncated section header")
        raw_type, count = SECTION_HEADER.unpack_from(view, offset)
        offset += SECTION_HEADER.size
        try:
            record_type = RecordType(raw_type)
        except ValueError:
            raise ProtocolError(NackReason.BAD_FORMAT, f"unknown record type {raw_type}") from None
        if count == 0:
            raise ProtocolError(NackReason.BAD_FORMAT, "empty section")
        layout = FIXED_LAYOUTS.get(record_type)
        if layout is None:
            size = _raw_section_length(view, offset, count)
        else:
            size = layout.size * count
            if offset + size > len(view):
                raise ProtocolError(NackReason.BAD_FORMAT, f"truncated {record_type.name} section")
        sections.append(Section(record_type, count, view[offset : offset + size]))
        offset += size
    return sections


def _raw_telegrams(payload: memoryview, count: int) -> Iterator[RawTelegramRecord]:
    offset = 0
    for _ in range(count):
        module, medium, received, rssi, length = RAW_TELEGRAM_HEADER.unpack_from(payload, offset)
        offset += RAW_TELEGRAM_HEADER.size
        yield RawTelegramRecord(
            module, Medium(medium), received, rssi, bytes(payload[offset : offset + length])
        )
        offset += length


def decode_section(section: Section) -> Iterator[Record]:
    """The records of one section (from ``split_sections``), as dataclasses."""
    payload = section.payload
    match section.record_type:
        case RecordType.PULSE:
            yield from (PulseRecord(*f) for f in PULSE.iter_unpack(payload))
        case RecordType.TEMPERATURE:
            yield from (TemperatureRecord(*f) for f in TEMPERATURE.iter_unpack(payload))
        case RecordType.STATUS:
            for module, ts, battery, rssi, hops, parent, flags, errors in STATUS.iter_unpack(
                payload
            ):
                tamper = bool(flags & TAMPER_FLAG)
                yield StatusRecord(module, ts, battery, rssi, hops, parent, tamper, errors)
        case RecordType.EVENT:
            yield from (EventRecord(*f) for f in EVENT.iter_unpack(payload))
        case RecordType.RAW_TELEGRAM:
            yield from _raw_telegrams(payload, section.count)


def decode_records(body: bytes | memoryview) -> list[Record]:
    """Every record of an UPLOAD body, in order; raises ``ProtocolError``."""
    return [record for section in split_sections(body) for record in decode_section(section)]


def count_records(sections: Sequence[Section]) -> int:
    return sum(section.count for section in sections)
