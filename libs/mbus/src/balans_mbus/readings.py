"""Decoded M-Bus values as balans readings: pure functions, no I/O.

A standard meter is read like a D100FC channel: its energy (kWh meters) or volume (m3
meters) register becomes a cumulative count of ``pulse_weight`` units on input 0 of the
meter's virtual radio module, and its flow/return temperatures a temperature reading of
that module. An electricity meter's further registers (export, import per phase) go to
inputs 1 to 4 of the same module (:data:`EXTRA_REGISTERS`): stored and readable as
register series, but no meter counts them, so balance and billing use import only. The
hour is the top of the hour at or after reception: the register value read within an
hour stands for the end of that hour, as with the modules' own registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

from balans_db.provisioning.mbus import MBUS_INPUT, manufacturer_number, virtual_module_serial
from balans_mbus.model import DecodedTelegram

__all__ = ["MBUS_INPUT", "manufacturer_number", "virtual_module_serial"]

_HOUR = timedelta(hours=1)
# virtual module input -> the register of a kWh meter stored there besides its own (input 0)
EXTRA_REGISTERS = {
    1: "export_energy_kwh",
    2: "energy_l1_kwh",
    3: "energy_l2_kwh",
    4: "energy_l3_kwh",
}


@dataclass(frozen=True, slots=True)
class MbusMeter:
    """A registered standard meter: which balans meter, which virtual module, its key."""

    meter_id: int
    building_id: int
    module_serial: int
    unit: str  # 'kWh' | 'm3'
    pulse_weight: Decimal
    key: bytes | None
    version: int | None = None  # the registered EN 13757 version and medium (None: any)
    medium: int | None = None


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


def reading_hour(received_at: datetime) -> datetime:
    """The top of the hour at or after ``received_at`` (UTC)."""
    at = received_at.astimezone(UTC)
    floor = at.replace(minute=0, second=0, microsecond=0)
    return floor if floor == at else floor + _HOUR


def register_value(decoded: DecodedTelegram, unit: str) -> float | None:
    """The register a balans meter of ``unit`` counts: energy in kWh or volume in m3."""
    return decoded.values.energy_kwh if unit == "kWh" else decoded.values.volume_m3


def identity_mismatch(decoded: DecodedTelegram, meter: MbusMeter) -> str | None:
    """Why a telegram is not from the registered device (version or medium differ), or None."""
    header = decoded.header
    if header is None:
        return None
    for what, registered, sent in (
        ("version", meter.version, header.version),
        ("medium", meter.medium, header.device_type),
    ):
        if registered is not None and registered != sent:
            return f"{what} 0x{sent:02X} in the telegram, 0x{registered:02X} registered"
    return None


def _count(value: float | None, meter: MbusMeter, input_: int, ts: datetime) -> PulseRow | None:
    if value is None or value < 0:
        return None
    count = (Decimal(str(value)) / meter.pulse_weight).to_integral_value(ROUND_HALF_EVEN)
    return PulseRow(meter.module_serial, input_, ts, int(count))


def readings_for(
    decoded: DecodedTelegram, meter: MbusMeter, received_at: datetime
) -> tuple[list[PulseRow], TemperatureRow | None]:
    """The register (pulse) and temperature readings one decoded telegram gives ``meter``:
    its own register on input 0, a kWh meter's :data:`EXTRA_REGISTERS` where reported."""
    ts = reading_hour(received_at)
    registers = [(MBUS_INPUT, register_value(decoded, meter.unit))]
    if meter.unit == "kWh":
        registers += [
            (input_, getattr(decoded.values, name)) for input_, name in EXTRA_REGISTERS.items()
        ]
    pulses = [
        row for input_, value in registers if (row := _count(value, meter, input_, ts)) is not None
    ]
    temperature = None
    flow, back = decoded.values.flow_temperature_c, decoded.values.return_temperature_c
    if flow is not None and back is not None:
        temperature = TemperatureRow(
            meter.module_serial, ts, received_at, round(flow * 100), round(back * 100)
        )
    return pulses, temperature
