"""Conformance: 133 real telegrams (40 meter types) with the values wmbusmeters expects."""

from __future__ import annotations

import hashlib
import re

import pytest

from balans_mbus.conformance import ConformanceCase, decode_case, mismatches

from .corpus import corpus_path, load_cases

try:
    CASES = load_cases()
    LOAD_ERROR: str | None = None
except FileNotFoundError as exc:  # reported by test_corpus_is_present, not skipped
    CASES, LOAD_ERROR = [], str(exc)
STANDARD = [case for case in CASES if case.standard]
OTHERS = [case for case in CASES if not case.standard]


def test_corpus_is_present() -> None:
    """The repository's copy of the corpus holds the 133 cases, 104 standard."""
    assert LOAD_ERROR is None, LOAD_ERROR
    assert corpus_path().is_file()
    assert len(CASES) == 133
    assert len(STANDARD) == 104


def test_corpus_is_the_file_its_provenance_describes() -> None:
    """The copy is byte for byte the one whose origin PROVENANCE.md records (its sha256)."""
    provenance = (corpus_path().parent / "PROVENANCE.md").read_text()
    recorded = re.search(r"sha256 of the file \| `([0-9a-f]{64})`", provenance)
    assert recorded is not None, "PROVENANCE.md must record the corpus's sha256"
    assert hashlib.sha256(corpus_path().read_bytes()).hexdigest() == recorded.group(1)


@pytest.mark.parametrize("case", STANDARD, ids=lambda case: case.case_id)
def test_standard_case_decodes_to_expected_values(case: ConformanceCase) -> None:
    """Energy, volume, temperatures, power, flow and HCA units match within 1e-6."""
    decoded = decode_case(case)
    assert decoded.ok, decoded.reason
    assert case.expected, "a standard case without a checked quantity would prove nothing"
    assert mismatches(case, decoded) == {}


@pytest.mark.parametrize("case", OTHERS, ids=lambda case: case.case_id)
def test_other_case_fails_cleanly_or_decodes_right(case: ConformanceCase) -> None:
    """A manufacturer-specific case fails with a reason, and never yields a wrong value."""
    decoded = decode_case(case)
    if not decoded.ok:
        assert decoded.failure is not None
        assert decoded.reason
    wrong = {key: pair for key, pair in mismatches(case, decoded).items() if pair[1] is not None}
    assert wrong == {}
