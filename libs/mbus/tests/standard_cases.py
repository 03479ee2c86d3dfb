"""Water, electricity, gas and heat meter telegrams built from the standard's tables (see
``telegrams.py``), with the values they must decode to: the decoder tests use them, and
``data/standard/standard_telegrams.jsonl`` is written from them for ``balans mbus
conformance`` (``write_case_file``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .telegrams import (
    BCD8,
    CI_LONG,
    CI_LONG_COMPACT,
    COLD_WATER,
    ELECTRICITY,
    GAS,
    HEAT,
    HOT_WATER,
    IDLE_FILLER,
    INT16,
    INT24,
    INT32,
    PHASE,
    REAL32,
    VIF_DATETIME,
    VIFE_ACCUMULATE_NEGATIVE,
    VIFE_COMBINABLE_EXTENSION,
    VIFE_CORRECTION_1E_2,
    WARM_WATER,
    WATER,
    Meter,
    bcd,
    compact_payload,
    dif_header,
    integer,
    long_frame,
    plain_text_vif,
    real32,
    record,
    short_frame,
    type_f,
    vif,
    vif_header,
)

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
MOMENT = datetime(2026, 1, 31, 23, 45)  # a 31st: the type F day that used to go wrong


@dataclass(frozen=True)
class StandardCase:
    """Telegrams to feed in order (the last one is checked), their key, the expected values."""

    case_id: str
    device_type: int
    telegrams: tuple[bytes, ...]
    expected: dict[str, float]
    key: bytes | None = None
    standard: bool = True

    def row(self) -> dict[str, object]:
        """The case as a row of the conformance corpus format (docs/mbus.md)."""
        return {
            "case_id": self.case_id,
            "source": "built from EN 13757-3 tables by libs/mbus/tests/standard_cases.py",
            "telegrams_hex": [telegram.hex().upper() for telegram in self.telegrams],
            "key": self.key.hex().upper() if self.key else None,
            "compact_format_difvif": None,
            "std_en13757_decodable": self.standard,
            "expected_summary": {key: {"value": value} for key, value in self.expected.items()},
        }


def _short(case_id: str, meter: Meter, records: bytes, expected: dict[str, float], *,
           encrypted: bool) -> StandardCase:  # fmt: skip
    key = KEY if encrypted else None
    telegram = short_frame(meter, records, key=key)
    return StandardCase(case_id, meter.device_type, (telegram,), expected, key)


def _timestamp() -> bytes:
    return record(dif_header(INT32), vif_header(VIF_DATETIME), type_f(MOMENT))


def _water(case_id: str, device_id: str, device_type: int, *, encrypted: bool) -> StandardCase:
    """Volume in litres (BCD), flow in l/h as a 32-bit real, and for warm/hot water the
    flow temperature in 0.1 °C."""
    records = (
        _timestamp()
        + record(dif_header(BCD8), vif_header(vif("m3", -3)), bcd(1234567, BCD8))
        + record(dif_header(REAL32), vif_header(vif("m3/h", -3)), real32(845.5))
    )
    expected = {"total_volume_m3": 1234.567, "volume_flow_m3h": 0.8455}
    if device_type in (WARM_WATER, HOT_WATER):
        records += record(dif_header(INT16), vif_header(vif("flow °C", -1)), integer(553, INT16))
        expected["flow_temperature_c"] = 55.3
    meter = Meter("DME", device_id, 0x1E, device_type)
    return _short(case_id, meter, records, expected, encrypted=encrypted)


def _electricity() -> StandardCase:
    """Import A+ in 10 Wh, export A- (VIFE 0x3C) in Wh, total power in W as a 32-bit
    real, and the power of each phase (VIFE 0xFC 0x01..0x03) in W."""
    records = (
        _timestamp()
        + record(dif_header(INT32), vif_header(vif("Wh", 1)), integer(12_345_678, INT32))
        + record(
            dif_header(INT32),
            vif_header(vif("Wh", 0), VIFE_ACCUMULATE_NEGATIVE),
            integer(4_321_000, INT32),
        )
        + record(dif_header(REAL32), vif_header(vif("W", 0)), real32(2310.5))
    )
    expected = {"total_energy_kwh": 123_456.78, "export_energy_kwh": 4321.0, "power_kw": 2.3105}
    for phase, watts in (("L1", 1200), ("L2", 710), ("L3", 400)):
        records += record(
            dif_header(INT24),
            vif_header(vif("W", 0), VIFE_COMBINABLE_EXTENSION, PHASE[phase]),
            integer(watts, INT24),
        )
        expected[f"power_{phase.lower()}_kw"] = watts / 1000
    meter = Meter("EMH", "40000001", 0x02, ELECTRICITY)
    return _short("electricity#0", meter, records, expected, encrypted=True)


def _gas() -> StandardCase:
    """Volume in 0.01 m3 (VIF 0x14) and flow in m3/h as a 32-bit real (VIF 0x3E)."""
    records = (
        _timestamp()
        + record(dif_header(INT32), vif_header(vif("m3", -2)), integer(2_850_427, INT32))
        + record(dif_header(REAL32), vif_header(vif("m3/h", 0)), real32(1.25))
    )
    expected = {"total_volume_m3": 28504.27, "volume_flow_m3h": 1.25}
    meter = Meter("ELS", "50000001", 0x33, GAS)
    return _short("gas#0", meter, records, expected, encrypted=True)


def _heat() -> StandardCase:
    """Energy in kWh (VIF 0x06), power in kW as a 32-bit real (VIF 0x2E), flow and
    return temperature in 0.1 °C."""
    records = (
        _timestamp()
        + record(dif_header(INT32), vif_header(vif("Wh", 3)), integer(5432, INT32))
        + record(dif_header(REAL32), vif_header(vif("W", 3)), real32(7.5))
        + record(dif_header(INT16), vif_header(vif("flow °C", -1)), integer(701, INT16))
        + record(dif_header(INT16), vif_header(vif("return °C", -1)), integer(452, INT16))
    )
    expected = {
        "total_energy_kwh": 5432.0,
        "power_kw": 7.5,
        "flow_temperature_c": 70.1,
        "return_temperature_c": 45.2,
    }
    meter = Meter("KAM", "60000001", 0x1B, HEAT)
    return _short("heat#0", meter, records, expected, encrypted=False)


def _room_sensor_with_plain_text() -> StandardCase:
    """A plain-text unit (%RH) with a VIFE (10^-2) between a volume and a temperature."""
    records = (
        _timestamp()
        + record(
            dif_header(INT16), plain_text_vif("%RH", VIFE_CORRECTION_1E_2), integer(3396, INT16)
        )
        + record(dif_header(BCD8), vif_header(vif("m3", -3)), bcd(2500, BCD8))
        + record(dif_header(INT16), vif_header(vif("flow °C", -1)), integer(215, INT16))
    )
    meter = Meter("ELV", "70000001", 0x01, WATER)
    expected = {"total_volume_m3": 2.5, "flow_temperature_c": 21.5}
    return _short("plaintext#0", meter, records, expected, encrypted=False)


def compact_pair(meter: Meter, fillers: int = 2) -> tuple[bytes, bytes, dict[str, float]]:
    """A full frame (CI 0x72) and a compact frame (CI 0x73) of one meter, both mode 5;
    the compact frame's plaintext starts with ``fillers`` 0x2F before its signature."""
    headers_and_data = [
        (dif_header(BCD8) + vif_header(vif("m3", -3)), bcd(1234567, BCD8)),
        (dif_header(INT16) + vif_header(vif("m3/h", -3)), integer(450, INT16)),
        (dif_header(INT32) + vif_header(VIF_DATETIME), type_f(MOMENT)),
    ]
    headers = b"".join(header for header, _ in headers_and_data)
    records = b"".join(header + data for header, data in headers_and_data)
    data = b"".join(data for _, data in headers_and_data)
    full = long_frame(meter, CI_LONG, b"\x2f\x2f" + records, access=0x21, key=KEY)
    compact_plain = bytes([IDLE_FILLER]) * fillers + compact_payload(headers, records, data)
    compact = long_frame(meter, CI_LONG_COMPACT, compact_plain, access=0x22, key=KEY)
    return full, compact, {"total_volume_m3": 1234.567, "volume_flow_m3h": 0.45}


def _compact_long_header() -> StandardCase:
    full, compact, expected = compact_pair(Meter("ZRI", "80000001", 0x33, WATER))
    return StandardCase("compact-long-header#0", WATER, (full, compact), expected, KEY)


def _without_key() -> StandardCase:
    """An encrypted telegram with no key: refused (key_missing), not a standard case."""
    case = _water("nokey#0", "31000009", COLD_WATER, encrypted=True)
    return StandardCase(case.case_id, COLD_WATER, case.telegrams, case.expected, None, False)


def standard_cases() -> list[StandardCase]:
    return [
        _water("coldwater#0", "31000001", COLD_WATER, encrypted=True),
        _water("hotwater#0", "31000002", HOT_WATER, encrypted=True),
        _water("warmwater#0", "31000003", WARM_WATER, encrypted=False),
        _water("water#0", "31000004", WATER, encrypted=False),
        _electricity(),
        _gas(),
        _heat(),
        _room_sensor_with_plain_text(),
        _compact_long_header(),
        _without_key(),
    ]


def case_file_text() -> str:
    return "".join(json.dumps(case.row()) + "\n" for case in standard_cases())


def write_case_file(path: Path) -> None:
    """(Re)write the committed case file from the builders."""
    path.write_text(case_file_text(), encoding="utf-8")
