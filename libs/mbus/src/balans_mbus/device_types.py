"""Device type (medium) codes of EN 13757-3 table 3 / OMS, the ones a heat platform meets."""

from __future__ import annotations

DEVICE_TYPES: dict[int, str] = {
    0x00: "other",
    0x01: "oil",
    0x02: "electricity",
    0x03: "gas",
    0x04: "heat (return)",
    0x05: "steam",
    0x06: "warm water",
    0x07: "water",
    0x08: "heat cost allocator",
    0x09: "compressed air",
    0x0A: "cooling (return)",
    0x0B: "cooling (flow)",
    0x0C: "heat (flow)",
    0x0D: "heat / cooling",
    0x0E: "bus / system component",
    0x0F: "unknown",
    0x15: "hot water",
    0x16: "cold water",
    0x17: "dual water",
    0x18: "pressure",
    0x19: "A/D converter",
    0x1A: "smoke detector",
    0x1B: "room sensor",
    0x1C: "gas detector",
    0x25: "radio converter (meter side)",
    0x31: "OMS MUC",
    0x32: "OMS unidirectional repeater",
    0x33: "OMS bidirectional repeater",
    0x36: "radio converter (system side)",
    0x37: "radio converter (meter side)",
}

HEAT_METER_TYPES = frozenset({0x04, 0x0A, 0x0B, 0x0C, 0x0D})
HCA_TYPE = 0x08
ELECTRICITY_TYPE = 0x02


def device_type_name(code: int) -> str:
    """Human name of a device type code (``reserved 0xNN`` if unknown)."""
    return DEVICE_TYPES.get(code, f"reserved 0x{code:02X}")
