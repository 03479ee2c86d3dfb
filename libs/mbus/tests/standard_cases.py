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
    COLD_WATER,
    ELECTRICITY,
    GAS,
    HEAT,
    HOT_WATER,
    INT16,
    INT24,
    INT32,
    PHASE,
    REAL32,
    VIF_DATETIME,
    VIFE_ACCUMULATE_NEGATIVE,
    VIFE_COMBINABLE_EXTENSION,
    WARM_WATER,
    WATER,
    Meter,
    bcd,
    dif_header,
    integer,
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
    case_id: str
    meter: Meter
    records: bytes
    expected: dict[str, float]
    encrypted: bool = False

    def telegram(self) -> bytes:
        return short_frame(self.meter, self.records, key=KEY if self.encrypted else None)

    def row(self) -> dict[str, object]:
        """The case as a row of the conformance corpus format (docs/mbus.md)."""
        return {
            "case_id": self.case_id,
            "source": "built from EN 13757-3 tables by libs/mbus/tests/standard_cases.py",
            "telegrams_hex": [self.telegram().hex().upper()],
            "key": KEY.hex().upper() if self.encrypted else None,
            "compact_format_difvif": None,
            "std_en13757_decodable": True,
            "expected_summary": {key: {"value": value} for key, value in self.expected.items()},
        }


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
    return StandardCase(case_id, meter, records, expected, encrypted)


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
    return StandardCase("electricity#0", Meter("EMH", "40000001", 0x02, ELECTRICITY), records,
                        expected, encrypted=True)  # fmt: skip


def _gas() -> StandardCase:
    """Volume in 0.01 m3 (VIF 0x14) and flow in m3/h as a 32-bit real (VIF 0x3E)."""
    records = (
        _timestamp()
        + record(dif_header(INT32), vif_header(vif("m3", -2)), integer(2_850_427, INT32))
        + record(dif_header(REAL32), vif_header(vif("m3/h", 0)), real32(1.25))
    )
    expected = {"total_volume_m3": 28504.27, "volume_flow_m3h": 1.25}
    return StandardCase("gas#0", Meter("ELS", "50000001", 0x33, GAS), records, expected,
                        encrypted=True)  # fmt: skip


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
    return StandardCase("heat#0", Meter("KAM", "60000001", 0x1B, HEAT), records, expected)


def standard_cases() -> list[StandardCase]:
    return [
        _water("coldwater#0", "31000001", COLD_WATER, encrypted=True),
        _water("hotwater#0", "31000002", HOT_WATER, encrypted=True),
        _water("warmwater#0", "31000003", WARM_WATER, encrypted=False),
        _water("water#0", "31000004", WATER, encrypted=False),
        _electricity(),
        _gas(),
        _heat(),
    ]


def case_file_text() -> str:
    return "".join(json.dumps(case.row()) + "\n" for case in standard_cases())


def write_case_file(path: Path) -> None:
    """(Re)write the committed case file from the builders."""
    path.write_text(case_file_text(), encoding="utf-8")
