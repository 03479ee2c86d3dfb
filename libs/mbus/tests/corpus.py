"""Loading the wM-Bus conformance corpus (``data/``; where it comes from: data/PROVENANCE.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CORPUS_NAME = "wmbus_heat_telegrams.jsonl"
# corpus key -> MeterValues field
CHECKED_QUANTITIES = {
    "total_energy_kwh": "energy_kwh",
    "total_volume_m3": "volume_m3",
    "flow_temperature_c": "flow_temperature_c",
    "return_temperature_c": "return_temperature_c",
    "power_kw": "power_kw",
    "volume_flow_m3h": "volume_flow_m3h",
    "hca_current_units": "hca_units",
}
# The expected values were printed by wmbusmeters with six decimals (J/h power of
# 2.78e-6 kW appears as 3e-06), so half a unit in the sixth decimal is allowed besides
# the relative tolerance of 1e-6.
REL_TOL = 1e-6
ABS_TOL = 5e-7


def corpus_path() -> Path:
    """The repository's copy, beside this module."""
    return Path(__file__).resolve().parent / "data" / CORPUS_NAME


@dataclass(frozen=True)
class Case:
    case_id: str
    telegrams: tuple[bytes, ...]
    key: bytes | None
    compact_format: bytes | None
    standard: bool
    expected: dict[str, float]


def load_cases() -> list[Case]:
    """Every corpus case; raises if the corpus is missing (the test must fail, not skip)."""
    path = corpus_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the M-Bus conformance corpus is missing: {path} (it is part of the repository; "
            "restore it from version control, see data/PROVENANCE.md)"
        )
    cases = []
    for line in path.read_text().splitlines():
        row: dict[str, Any] = json.loads(line)
        cases.append(
            Case(
                case_id=row["case_id"],
                telegrams=tuple(bytes.fromhex(t) for t in row["telegrams_hex"]),
                key=bytes.fromhex(row["key"]) if row["key"] else None,
                compact_format=(
                    bytes.fromhex(row["compact_format_difvif"])
                    if row["compact_format_difvif"]
                    else None
                ),
                standard=row["std_en13757_decodable"] is True,
                expected={
                    key: item["value"]
                    for key, item in row["expected_summary"].items()
                    if key in CHECKED_QUANTITIES
                },
            )
        )
    return cases


def close(expected: float, got: float | None) -> bool:
    return got is not None and math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)
