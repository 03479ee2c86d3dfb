"""Loading the shared wM-Bus conformance corpus (read in place, never copied)."""

from __future__ import annotations

import json
import math
import os
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


def repo_root() -> Path:
    """The workspace root: the nearest parent holding uv.lock."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "uv.lock").is_file():
            return parent
    raise RuntimeError(f"no uv.lock above {here}")


def corpus_path() -> Path:
    """``../shared/data/`` next to the repository (the layout of checkouts and of CI).

    ``BALANS_SHARED_DATA`` names another folder; a clone made elsewhere on a workstation
    falls back to ``/work/shared/data``. The first existing candidate wins."""
    candidates = [repo_root().parent / "shared" / "data", Path("/work/shared/data")]
    if os.environ.get("BALANS_SHARED_DATA"):
        candidates.insert(0, Path(os.environ["BALANS_SHARED_DATA"]))
    for folder in candidates:
        if (folder / CORPUS_NAME).is_file():
            return folder / CORPUS_NAME
    return candidates[0] / CORPUS_NAME


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
            f"the M-Bus conformance corpus is missing: {path} (it lives in shared/data "
            "beside the repository and is read in place)"
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
