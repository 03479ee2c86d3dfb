"""EN 13757-3 data records: cut the payload into records, let pymbusparser interpret each
one (VIF tables, scaling, BCD, dates), and name the ones balans uses in its own units.

Records are interpreted one at a time so that a single unreadable record (an invalid BCD
'no value' marker, a truncated tail) is reported and the others still count.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import pymbusparser

from balans_mbus.dif import IDLE_FILLER, HeaderError, data_length, header_end, is_special
from balans_mbus.model import DataRecord, MeterValues

_FUNCTIONS = {
    "Instantaneous value": "instantaneous",
    "Maximum value": "maximum",
    "Minimum value": "minimum",
    "Value during error state": "error",
}
_MANUFACTURER_DATA = (0x0F, 0x1F)

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
# Heat/cooling meters split energy by the sign of the contribution (VIFE 0x3B / 0x3C):
# positive is heating, the absolute value of negative is cooling.
_SIGNED_ENERGY = {
    "Accumulation only if value is positive": "heating_energy_kwh",
    "Accumulation only if value is negative": "cooling_energy_kwh",
}
_DATETIME_QUANTITIES = ("Time point (date and time)", "Time point (date)")


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


def _plain_value(value: dict[str, Any]) -> tuple[float | str | None, Decimal | None]:
    kind, raw = value.get("kind"), value.get("value")
    if kind in ("decimal", "float") and raw is not None:
        try:
            number = Decimal(str(raw))
        except InvalidOperation:
            return str(raw), None
        return float(number), number
    return (None if raw is None else str(raw)), None


def _to_record(parsed: dict[str, Any]) -> DataRecord:
    quantities = parsed.get("quantities") or []
    quantity = " / ".join(quantities) if quantities else parsed.get("data_coding", "unknown")
    unit = parsed.get("unit")
    value, number = _plain_value(parsed.get("value") or {})
    name, si_value = None, None
    normalised = _NORMALISED.get((quantities[0], unit)) if quantities else None
    if normalised is not None and len(quantities) > 1:
        # A second quantity changes the meaning; only the signed energies are understood.
        signed = _SIGNED_ENERGY.get(quantities[1]) if normalised[0] == "energy_kwh" else None
        normalised = (signed, normalised[1]) if signed and len(quantities) == 2 else None
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
        header_hex=parsed.get("header_hex", "").replace(" ", ""),
        data_hex=parsed.get("data_hex", "").replace(" ", ""),
    )


def parse_records(payload: bytes) -> ParsedRecords:
    """Interpret every record of a plaintext EN 13757-3 payload. Never raises."""
    pairs, stopped = _split(payload)
    records: list[DataRecord] = []
    problems: list[str] = [stopped] if stopped else []
    headers = bytearray()
    for header, data in pairs:
        if header[0] not in _MANUFACTURER_DATA:
            headers += header
        try:
            parsed = pymbusparser.parse_records(header + data)
        except pymbusparser.MbusParserError as exc:
            problems.append(f"record {(header + data).hex().upper()}: {exc}")
            continue
        if parsed and parsed[0].get("function") in _FUNCTIONS:
            records.append(_to_record(parsed[0]))
    return ParsedRecords(tuple(records), bytes(headers), tuple(problems))


def current_values(records: tuple[DataRecord, ...]) -> MeterValues:
    """The first instantaneous storage-0, tariff-0, subunit-0 value of each quantity.

    A heat/cooling meter without a plain energy register reports its heating energy.
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
    return MeterValues.model_validate(found)
