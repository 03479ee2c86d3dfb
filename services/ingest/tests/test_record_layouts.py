"""The protocol's struct codec and the persister's numpy dtypes read the same bytes the same
way: both come from ``balans_protocol.records.WIRE_FIELDS``, and this checks they agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from balans_ingest.persister.copy_rows import LAYOUTS, wire_records
from balans_protocol.records import (
    FIXED_LAYOUTS,
    RAW_TELEGRAM_HEADER,
    TAMPER_FLAG,
    WIRE_FIELDS,
    Record,
    RecordType,
    StatusRecord,
    encode_records,
    numpy_fields,
    split_sections,
)
from balans_protocol.strategies import records

# wire field -> how to read it from the record dataclass (the names differ in a few places)
_FROM_RECORD = {
    "ts": lambda r: r.ts_unix,
    "supply": lambda r: r.supply_centi_c,
    "return": lambda r: r.return_centi_c,
    "flags": lambda r: TAMPER_FLAG if r.tamper else 0,
    "received": lambda r: r.received_unix,
    "length": lambda r: len(r.data),
}


def _field(record: Record, name: str) -> int:
    read = _FROM_RECORD.get(name)
    return int(read(record) if read is not None else getattr(record, name))


def test_every_fixed_record_has_one_table_layout_from_the_wire_fields() -> None:
    """Each fixed-size record type is stored by the persister, with the dtype made from
    the wire fields, and its size is the struct's (no padding, no missing field)."""
    assert set(LAYOUTS) == set(FIXED_LAYOUTS)
    for record_type, layout in LAYOUTS.items():
        assert layout.wire == np.dtype(numpy_fields(record_type))
        assert layout.wire.names == tuple(name for name, _ in WIRE_FIELDS[record_type])
        assert layout.wire.itemsize == FIXED_LAYOUTS[record_type].size
    raw = np.dtype(numpy_fields(RecordType.RAW_TELEGRAM))
    assert raw.itemsize == RAW_TELEGRAM_HEADER.size


@given(st.lists(records, min_size=1, max_size=40))
def test_struct_encoded_records_read_the_same_through_the_dtype(items: list[Record]) -> None:
    """Records packed by the struct codec, read as numpy structured arrays, give every
    field's value; the arrays written back are the same bytes."""
    sections = split_sections(encode_records(items))
    remaining = iter(items)
    for section in sections:
        sent = [next(remaining) for _ in range(section.count)]
        if section.record_type is RecordType.RAW_TELEGRAM:
            _check_raw_headers(sent, section.payload)
            continue
        array = wire_records(section.record_type, section.payload)
        names = [name for name, _ in WIRE_FIELDS[section.record_type]]
        assert [[int(row[n]) for n in names] for row in array] == [
            [_field(r, n) for n in names] for r in sent
        ]
        assert array.tobytes() == bytes(section.payload)
        unpacked = list(FIXED_LAYOUTS[section.record_type].iter_unpack(section.payload))
        assert [tuple(int(v) for v in row) for row in array.tolist()] == unpacked


@given(st.lists(records, min_size=1, max_size=40))
def test_dtype_built_records_decode_through_the_struct_codec(items: list[Record]) -> None:
    """Records built as numpy rows from their field values are the bytes the struct codec
    decodes back to the same records (the other direction)."""
    for section in split_sections(encode_records(items)):
        if section.record_type is RecordType.RAW_TELEGRAM:
            continue
        dtype = LAYOUTS[section.record_type].wire
        unpacked = list(FIXED_LAYOUTS[section.record_type].iter_unpack(section.payload))
        rebuilt = np.array(unpacked, dtype=dtype)
        assert rebuilt.tobytes() == bytes(section.payload)


def _check_raw_headers(sent: list[Record], payload: memoryview) -> None:
    """A RAW_TELEGRAM's fixed header reads the same through the dtype and the struct."""
    dtype = np.dtype(numpy_fields(RecordType.RAW_TELEGRAM))
    names = [name for name, _ in WIRE_FIELDS[RecordType.RAW_TELEGRAM]]
    offset = 0
    for record in sent:
        header = np.frombuffer(payload, dtype=dtype, count=1, offset=offset)[0]
        assert [int(header[n]) for n in names] == [_field(record, n) for n in names]
        assert tuple(int(v) for v in header.tolist()) == RAW_TELEGRAM_HEADER.unpack_from(
            payload, offset
        )
        offset += RAW_TELEGRAM_HEADER.size + int(header["length"])


def test_status_flags_carry_the_tamper_bit() -> None:
    """The one field whose wire value is not the dataclass value: STATUS flags bit 0."""
    body = encode_records([StatusRecord(1, 2, 3, -4, 5, 6, True, 7)])
    (section,) = split_sections(body)
    assert int(wire_records(RecordType.STATUS, section.payload)["flags"][0]) == TAMPER_FLAG
