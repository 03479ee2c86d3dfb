"""Decoded M-Bus values as balans readings: pure functions, no I/O.

A standard meter is read like a D100FC channel: its energy (kWh meters) or volume (m3
meters) register becomes a cumulative count of ``pulse_weight`` units on input 0 of the
meter's virtual radio module, and its flow/return temperatures a temperature reading of
that module. The hour is the top of the hour at or after reception: the register value
read within an hour stands for the end of that hour, as with the modules' own registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from balans_mbus.model import DecodedTelegram

MBUS_INPUT = 0
_VIRTUAL_SERIAL_BASE = 1 << 48
_HOUR = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class MbusMeter:
    """A registered standard meter: which balans meter, which virtual module, its key."""

    meter_id: int
    building_id: int
    module_serial: int
    unit: str  # 'kWh' | 'm3'
    pulse_weight: Decimal
    key: bytes | None


@dataclass(frozen=True, slots=True)
class PulseRow:
    module_serial: int
    input: int
    ts: datetime
    count: int


@dataclass(frozen=True, slots=True)
class TemperatureRow:
    """One temperature sample; the stored reading is the mean of the hour's samples."""

    module_serial: int
    ts: datetime
    received_at: datetime
    supply_centi_c: int
    return_centi_c: int


def manufacturer_number(code: str) -> int:
    """The 15-bit M field of a three-letter FLAG code (inverse of the link layer's decoding)."""
    letters = [ord(char) - 64 for char in code.upper()]
    if len(letters) != 3 or any(not 0 <= value <= 31 for value in letters):
        raise ValueError(f"not a manufacturer code: {code!r}")
    return (letters[0] << 10) | (letters[1] << 5) | letters[2]


def virtual_module_serial(manufacturer: str, device_id: str) -> int:
    """A radio-module serial for a standard meter, outside the u32 range of real modules."""
    return _VIRTUAL_SERIAL_BASE | manufacturer_number(manufacturer) << 32 | int(device_id, 16)


def reading_hour(received_at: datetime) -> datetime:
    """The top of the hour at or after ``received_at`` (UTC)."""
    at = received_at.astimezone(UTC)
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + _HOUR


def register_value(decoded: DecodedTelegram, unit: str) -> float | None:
    """The register a balans meter of ``unit`` counts: energy in kWh or volume in m3."""
    return decoded.values.energy_kwh if unit == "kWh" else decoded.values.volume_m3


def readings_for(
    decoded: DecodedTelegram, meter: MbusMeter, received_at: datetime
) -> tuple[PulseRow | None, TemperatureRow | None]:
    """The pulse and temperature readings one decoded telegram gives ``meter``."""
    ts = reading_hour(received_at)
    pulse = None
    value = register_value(decoded, meter.unit)
    if value is not None and value >= 0:
        count = (Decimal(str(value)) / meter.pulse_weight).to_integral_value(ROUND_HALF_EVEN)
        pulse = PulseRow(meter.module_serial, MBUS_INPUT, ts, int(count))
    temperature = None
    flow, back = decoded.values.flow_temperature_c, decoded.values.return_temperature_c
    if flow is not None and back is not None:
        temperature = TemperatureRow(
            meter.module_serial, ts, received_at, round(flow * 100), round(back * 100)
        )
    return pulse, temperature
