"""EN 13757-3 data records: cut the payload into records, let pymbusparser interpret each
one (VIF tables, scaling, BCD, dates), and name the ones balans uses in its own units.

Records are interpreted one at a time so that a single unreadable record (an invalid BCD
'no value' marker, a truncated tail) is reported and the others still count.

pymbusparser 0.5.3 gets three things wrong, fixed here around it (see docs/mbus.md):
- a plain-text VIF (0x7C / 0xFC) carries its unit text right after the VIF and any VIFE
  after the text; pymbusparser expects the VIFEs first, so the header is handed to it in
  that order;
- 32-bit reals (DIF data field 0x5) come back without the VIF's decimal exponent: they are
  scaled by the factor pymbusparser gives the same header for the integer 1;
- date and time (type F) values are decoded by :mod:`balans_mbus.timepoints`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pymbusparser

from balans_mbus.device_types import ELECTRICITY_TYPE
from balans_mbus.dif import (
    EXTENSION,
    IDLE_FILLER,
    HeaderError,
    data_length,
    header_end,
    is_special,
    plain_text_span,
)
from balans_mbus.model import DataRecord, MeterValues
from balans_mbus.timepoints import TimePointError, decode_type_f

_FUNCTIONS = {
    "Instantaneous value": "instantaneous",
    "Maximum value": "maximum",
    "Minimum value": "minimum",
    "Value during error state": "error",
}
_MANUFACTURER_DATA = (0x0F, 0x1F)
_DATA_FIELD = 0x0F
_REAL32, _INT32 = 0x05, 0x04
_TYPE_F = "Date and time (type F)"

# (EN 13757-3 quantity as pymbusparser names it, its unit) -> (balans name, factor)
_NORMALISED: dict[tuple[str, str | None], tuple[str, Decimal]] = {
    ("Energy", "W.h"): ("energy_kwh", Decimal("0.001")),
    ("Energy", "J"): ("energy_kwh", Decimal(1) / Decimal(3_600_000)),
    ("Volume", "m3"): ("volume_m3", Decimal(1)),
    ("Power", "W"): ("power_kw", Decimal("0.001")),
    ("Power", "J.h-1"): ("power_kw", Decimal(1) / Decimal(3_600_000)),
    ("Volume flow", "m3.h-1"): ("volume_flow_m3h", Decimal(1)),
    ("Volume flow", "m3.min-1"): ("volume_flow_m3h", Decimal(60)),
    ("Volume flow", "m3.s-1"): ("volume_flow_m3h", Decimal(3600)),
    ("Flow temperature", "Cel"): ("flow_temperature_c", Decimal(1)),
    ("Return temperature", "Cel"): ("return_temperature_c", Decimal(1)),
    ("Dimensionless HCA", None): ("hca_units", Decimal(1)),
}
# Energy split by the sign of the contribution (VIFE 0x3B / 0x3C). A heat/cooling meter
# counts heating as positive and cooling as negative; an electricity meter counts
# import (A+) as positive and export (A-) as negative.
_POSITIVE = "Accumulation only if value is positive"
_NEGATIVE = "Accumulation only if value is negative"
_SIGNED_ENERGY = {_POSITIVE: "heating_energy_kwh", _NEGATIVE: "cooling_energy_kwh"}
_SIGNED_ELECTRICITY = {_POSITIVE: "energy_kwh", _NEGATIVE: "export_energy_kwh"}
# Orthogonal VIFE 0xFC 0x01..0x03 (EN 13757-3:2018): the value of one phase.
_PHASES = {"At phase L1": "l1", "At phase L2": "l2", "At phase L3": "l3"}
_DATETIME_QUANTITIES = ("Time point (date and time)", "Time point (date)")


class RecordError(ValueError):
    """A record whose value cannot be given without being wrong."""


@dataclass(frozen=True, slots=True)
class ParsedRecords:
    """The readable records, the header bytes of every record (for compact formats) and
    why the others could not be read."""

    records: tuple[DataRecord, ...]
    headers: bytes
    problems: tuple[str, ...]


def _split(payload: bytes) -> tuple[list[tuple[bytes, bytes]], str | None]:
    """Cut ``payload`` into (header, data) pairs; the second item says why it stopped early."""
    out: list[tuple[bytes, bytes]] = []
    pos = 0
    while pos < len(payload):
        dif = payload[pos]
        if dif == IDLE_FILLER:
            pos += 1
            continue
        if dif in _MANUFACTURER_DATA:
            out.append((payload[pos : pos + 1], payload[pos + 1 :]))
            return out, None
        if is_special(dif):
            return out, f"DIF 0x{dif:02X} at byte {pos} is reserved"
        try:
            end = header_end(payload, pos)
            length = data_length(dif, payload, end)
        except HeaderError as exc:
            return out, f"record at byte {pos}: {exc}"
        if end + length > len(payload):
            return (
                out,
                f"record at byte {pos}: needs {length} data bytes, {len(payload) - end} left",
            )
        out.append((payload[pos:end], payload[end : end + length]))
        pos = end + length
    return out, None


def _vif_position(header: bytes) -> int:
    pos = 0
    while header[pos] & EXTENSION:
        pos += 1
    return pos + 1


@dataclass(frozen=True, slots=True)
class _ParserHeader:
    """A record header as sent, in the order pymbusparser reads it, and a plain-text unit."""

    sent: bytes
    header: bytes
    unit_text: str | None = None


def _parser_header(header: bytes) -> _ParserHeader:
    """Move a plain-text VIF's length and text behind its VIFEs, where pymbusparser looks.

    The text is sent last character first (EN 13757-3: the byte order of the characters
    follows the byte order of the data), hence the reversal.
    """
    vif_pos = _vif_position(header)
    span = plain_text_span(header, vif_pos)
    if span is None:
        return _ParserHeader(header, header)
    start, end = span
    text = header[start:end]
    unit = text[::-1].decode("ascii", errors="replace")
    ordered = header[: vif_pos + 1] + header[end:] + header[start - 1 : end]
    return _ParserHeader(header, ordered, unit)


def _parse_one(record: bytes) -> dict[str, Any] | None:
    parsed = pymbusparser.parse_records(record)
    return parsed[0] if parsed else None


def _scale(header: bytes) -> Decimal:
    """The factor pymbusparser applies to an integer under ``header`` (exponent and VIFE
    corrections), found by handing it the integer 1."""
    probe = bytes([(header[0] & ~_DATA_FIELD) | _INT32]) + header[1:] + (1).to_bytes(4, "little")
    value = (_parse_one(probe) or {}).get("value") or {}
    if value.get("kind") != "decimal":
        raise RecordError(f"no decimal scale for header {header.hex().upper()}")
    return Decimal(str(value["value"]))


def _real32(data: bytes) -> Decimal:
    """The shortest decimal that is this IEEE-754 single (0.1 rather than 0.100000001)."""
    (raw,) = struct.unpack("<f", data)
    if not math.isfinite(raw):
        raise RecordError(f"32-bit real {data.hex().upper()} is not a number")
    for digits in range(1, 10):
        text = f"{raw:.{digits}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == raw:
            return Decimal(text)
    return Decimal(repr(raw))


def _value(
    parsed: dict[str, Any], header: _ParserHeader, data: bytes
) -> tuple[float | str | None, Decimal | None]:
    if parsed.get("data_coding") == _TYPE_F:
        try:
            return decode_type_f(data), None
        except TimePointError as exc:
            raise RecordError(f"date and time (type F) {data.hex().upper()}: {exc}") from exc
    value = parsed.get("value") or {}
    kind, raw = value.get("kind"), value.get("value")
    if kind == "float" and header.header[0] & _DATA_FIELD == _REAL32:
        number = _real32(data) * _scale(header.header)
        return float(number), number
    if kind in ("decimal", "float") and raw is not None:
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            return str(raw), None
        return float(number), number
    return (None if raw is None else str(raw)), None


def _name(
    quantities: list[str], unit: str | None, device_type: int | None
) -> tuple[str, Decimal] | None:
    """The balans name and factor of a record, where it is one balans uses."""
    normalised = _NORMALISED.get((quantities[0], unit)) if quantities else None
    if normalised is None or len(quantities) == 1:
        return normalised
    name, factor = normalised
    if name == "energy_kwh" and device_type == ELECTRICITY_TYPE and quantities[-1] in _PHASES:
        return _phase_energy(quantities[1:-1], _PHASES[quantities[-1]], factor)
    if len(quantities) > 2:
        return None  # more than one qualifier: not a quantity balans reads
    if name == "energy_kwh":
        signed = _SIGNED_ELECTRICITY if device_type == ELECTRICITY_TYPE else _SIGNED_ENERGY
        return (signed[quantities[1]], factor) if quantities[1] in signed else None
    if name == "power_kw" and quantities[1] in _PHASES:
        return f"power_{_PHASES[quantities[1]]}_kw", factor
    return None


def _phase_energy(signs: list[str], phase: str, factor: Decimal) -> tuple[str, Decimal] | None:
    """An electricity meter's register of one phase: import (plain or A+) or export (A-)."""
    if not signs or signs == [_POSITIVE]:
        return f"energy_{phase}_kwh", factor
    if signs == [_NEGATIVE]:
        return f"export_energy_{phase}_kwh", factor
    return None


def _to_record(
    parsed: dict[str, Any], header: _ParserHeader, data: bytes, device_type: int | None
) -> DataRecord:
    quantities = parsed.get("quantities") or []
    quantity = " / ".join(quantities) if quantities else parsed.get("data_coding", "unknown")
    unit = header.unit_text if header.unit_text is not None else parsed.get("unit")
    value, number = _value(parsed, header, data)
    name, si_value = None, None
    normalised = _name(quantities, unit, device_type)
    if normalised is not None and number is not None:
        name, si_value = normalised[0], float(number * normalised[1])
    return DataRecord(
        function=_FUNCTIONS.get(parsed.get("function", ""), "instantaneous"),
        storage=int(parsed.get("storage_number", 0)),
        tariff=int(parsed.get("tariff", 0)),
        subunit=int(parsed.get("subunit", 0)),
        quantity=quantity,
        unit=unit,
        value=value,
        name=name,
        si_value=si_value,
        header_hex=header.sent.hex().upper(),
        data_hex=data.hex().upper(),
    )


def parse_records(payload: bytes, device_type: int | None = None) -> ParsedRecords:
    """Interpret every record of a plaintext EN 13757-3 payload. Never raises.

    ``device_type`` (the medium of the telegram's header) decides what a signed energy
    register is: heating / cooling, or electricity import / export.
    """
    pairs, stopped = _split(payload)
    records: list[DataRecord] = []
    problems: list[str] = [stopped] if stopped else []
    headers = bytearray()
    for header, data in pairs:
        if header[0] in _MANUFACTURER_DATA:
            continue
        headers += header
        ordered = _parser_header(header)
        try:
            parsed = _parse_one(ordered.header + data)
            if parsed is not None and parsed.get("function") in _FUNCTIONS:
                records.append(_to_record(parsed, ordered, data, device_type))
        except (pymbusparser.MbusParserError, RecordError) as exc:
            problems.append(f"record {(header + data).hex().upper()}: {exc}")
    return ParsedRecords(tuple(records), bytes(headers), tuple(problems))


def current_values(records: tuple[DataRecord, ...]) -> MeterValues:
    """The first instantaneous storage-0, tariff-0, subunit-0 value of each quantity.

    A heat/cooling meter without a plain energy register reports its heating energy; an
    electricity meter without a total import register the sum of its three phases'.
    """
    found: dict[str, float | str] = {}
    for record in records:
        if (record.function, record.storage, record.tariff, record.subunit) != (
            "instantaneous", 0, 0, 0,
        ):  # fmt: skip
            continue
        if record.name is not None and record.si_value is not None:
            found.setdefault(record.name, record.si_value)
        elif record.quantity in _DATETIME_QUANTITIES and isinstance(record.value, str):
            found.setdefault("meter_datetime", record.value)
    if "energy_kwh" not in found and "heating_energy_kwh" in found:
        found["energy_kwh"] = found["heating_energy_kwh"]
    found.pop("heating_energy_kwh", None)
    phases = [found.get(f"energy_l{n}_kwh") for n in (1, 2, 3)]
    if "energy_kwh" not in found and all(isinstance(v, float) for v in phases):
        found["energy_kwh"] = float(sum(Decimal(str(v)) for v in phases))
    return MeterValues.model_validate(found)
