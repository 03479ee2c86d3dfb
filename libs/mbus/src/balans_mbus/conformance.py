"""Conformance report: decode a folder of telegram cases and compare with their expected
values, per medium (``balans mbus conformance DIR``).

A case file is JSON Lines, one case per line, in the format of the conformance corpus
(``libs/mbus/tests/data``; docs/mbus.md lists the fields read here). Other fields of a row
are ignored.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from balans_mbus.compact import FormatCache
from balans_mbus.decoder import decode_telegram
from balans_mbus.model import DecodedTelegram

# expected_summary key -> MeterValues field
CHECKED_QUANTITIES = {
    "total_energy_kwh": "energy_kwh",
    "export_energy_kwh": "export_energy_kwh",
    "cooling_energy_kwh": "cooling_energy_kwh",
    "total_volume_m3": "volume_m3",
    "flow_temperature_c": "flow_temperature_c",
    "return_temperature_c": "return_temperature_c",
    "power_kw": "power_kw",
    "power_l1_kw": "power_l1_kw",
    "power_l2_kw": "power_l2_kw",
    "power_l3_kw": "power_l3_kw",
    "volume_flow_m3h": "volume_flow_m3h",
    "hca_current_units": "hca_units",
}
# The corpus' values were printed with six decimals (a J/h power of 2.78e-6 kW appears as
# 3e-06), so half a unit of the sixth decimal is allowed besides the relative tolerance.
REL_TOL = 1e-6
ABS_TOL = 5e-7
CASE_FILES = "*.jsonl"
NO_HEADER = "unknown (no header)"


class ConformanceInputError(ValueError):
    """A case file that cannot be read; the message names the file and line."""


class ExpectedValue(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    value: float | str | None


class ConformanceCase(BaseModel):
    """One row of a case file: telegrams to feed in order, key, and expected values."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    case_id: str
    telegrams_hex: list[str] = Field(min_length=1)
    key: str | None = None
    compact_format_difvif: str | None = None
    std_en13757_decodable: bool | str | None = None
    expected_summary: dict[str, ExpectedValue] = Field(default_factory=dict)

    @field_validator("telegrams_hex")
    @classmethod
    def _telegrams_are_hex(cls, value: list[str]) -> list[str]:
        for item in value:
            bytes.fromhex(item)
        return value

    @field_validator("key", "compact_format_difvif")
    @classmethod
    def _is_hex(cls, value: str | None) -> str | None:
        if value is not None:
            bytes.fromhex(value)
        return value

    @property
    def telegrams(self) -> tuple[bytes, ...]:
        return tuple(bytes.fromhex(item) for item in self.telegrams_hex)

    @property
    def key_bytes(self) -> bytes | None:
        return bytes.fromhex(self.key) if self.key else None

    @property
    def compact_format(self) -> bytes | None:
        return bytes.fromhex(self.compact_format_difvif) if self.compact_format_difvif else None

    @property
    def standard(self) -> bool:
        """Flagged as plain EN 13757-3 records that a standard decoder must get right."""
        return self.std_en13757_decodable is True

    @property
    def expected(self) -> dict[str, float]:
        """The checked quantities (numbers) this case expects."""
        return {
            key: float(item.value)
            for key, item in self.expected_summary.items()
            if key in CHECKED_QUANTITIES and isinstance(item.value, int | float)
        }


def read_cases(path: Path) -> list[ConformanceCase]:
    """The cases of one JSON Lines file; raises :class:`ConformanceInputError`."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(ConformanceCase.model_validate_json(line))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'line'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConformanceInputError(f"{path}:{number}: {problems}") from exc
    return cases


def read_folder(folder: Path) -> list[ConformanceCase]:
    """Every case of every ``*.jsonl`` file of ``folder`` (not recursive), by file name."""
    if not folder.is_dir():
        raise ConformanceInputError(f"{folder} is not a folder")
    files = sorted(folder.glob(CASE_FILES))
    if not files:
        raise ConformanceInputError(f"{folder} holds no {CASE_FILES} case file")
    return [case for path in files for case in read_cases(path)]


def decode_case(case: ConformanceCase) -> DecodedTelegram:
    """Feed the case's telegrams in order through one format cache; the last one's result."""
    formats = FormatCache([case.compact_format] if case.compact_format else [])
    decoded = DecodedTelegram(ok=False)
    for telegram in case.telegrams:
        decoded = decode_telegram(telegram, case.key_bytes, formats)
    return decoded


def close(expected: float, got: float | None) -> bool:
    return got is not None and math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def mismatches(
    case: ConformanceCase, decoded: DecodedTelegram
) -> dict[str, tuple[float, float | None]]:
    """Expected quantities the decoded values miss or contradict: key -> (expected, got)."""
    return {
        key: (expected, got)
        for key, expected in case.expected.items()
        if not close(expected, got := getattr(decoded.values, CHECKED_QUANTITIES[key]))
    }


# correct: every expected quantity decoded right; incomplete: none contradicted, some missing;
# wrong: a decoded value contradicts the expected one; unchecked: nothing to compare.
Outcome = Literal["correct", "incomplete", "wrong", "unchecked", "refused"]


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    medium: str
    standard: bool
    outcome: Outcome
    detail: str = ""


def run_case(case: ConformanceCase) -> CaseResult:
    decoded = decode_case(case)
    medium = decoded.header.device_type_name if decoded.header else NO_HEADER
    if not decoded.ok:
        failure = decoded.failure.value if decoded.failure else "failed"
        detail = f"{failure}: {decoded.reason}"
        return CaseResult(case.case_id, medium, case.standard, "refused", detail)
    if not case.expected:
        return CaseResult(case.case_id, medium, case.standard, "unchecked")
    differences = mismatches(case, decoded)
    if not differences:
        return CaseResult(case.case_id, medium, case.standard, "correct")
    outcome: Outcome = (
        "wrong" if any(got is not None for _, got in differences.values()) else "incomplete"
    )
    detail = ", ".join(
        f"{key} expected {want}, " + ("missing" if got is None else f"got {got}")
        for key, (want, got) in differences.items()
    )
    return CaseResult(case.case_id, medium, case.standard, outcome, detail)


@dataclass
class Report:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No wrong value, and every standard case correct."""
        return not any(
            result.outcome == "wrong" or (result.standard and result.outcome != "correct")
            for result in self.results
        )

    def lines(self) -> list[str]:
        by_medium: dict[str, list[CaseResult]] = defaultdict(list)
        for result in self.results:
            by_medium[result.medium].append(result)
        out = [f"{'medium':<30}{_HEADINGS}"]
        for medium in sorted(by_medium):
            results = by_medium[medium]
            out.append(f"{medium:<30}{_counts(results)}")
            out += [
                f"  {result.outcome:<10} {result.case_id}: {result.detail}"
                for result in results
                if result.outcome in ("incomplete", "wrong", "refused")
            ]
        standard = [result for result in self.results if result.standard]
        correct_standard = sum(result.outcome == "correct" for result in standard)
        count = Counter(result.outcome for result in self.results)
        out.append(
            f"summary: {len(self.results)} cases, {len(self.results) - count['refused']} decoded, "
            f"{count['correct']} correct, {count['incomplete']} incomplete, "
            f"{count['wrong']} wrong, {count['refused']} refused; "
            f"standard cases {correct_standard}/{len(standard)} correct"
        )
        return out


_COLUMNS = ("cases", "decoded", "correct", "incomplete", "wrong", "refused")
_HEADINGS = "".join(f"{name:>11}" for name in _COLUMNS)


def _counts(results: list[CaseResult]) -> str:
    count: Counter[str] = Counter(result.outcome for result in results)
    count["cases"] = len(results)
    count["decoded"] = len(results) - count["refused"]
    return "".join(f"{count[name]:>11}" for name in _COLUMNS)


def run(cases: Iterable[ConformanceCase]) -> Report:
    return Report([run_case(case) for case in cases])
