"""The wM-Bus conformance corpus (``data/``; where it comes from: data/PROVENANCE.md), read
with the conformance report's own reader so the tests and ``balans mbus conformance`` agree.
"""

from __future__ import annotations

from pathlib import Path

from balans_mbus.conformance import ConformanceCase, read_cases

CORPUS_NAME = "wmbus_heat_telegrams.jsonl"


def corpus_path() -> Path:
    """The repository's copy, beside this module."""
    return Path(__file__).resolve().parent / "data" / CORPUS_NAME


def load_cases() -> list[ConformanceCase]:
    """Every corpus case; raises if the corpus is missing (the test must fail, not skip)."""
    path = corpus_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"the M-Bus conformance corpus is missing: {path} (it is part of the repository; "
            "restore it from version control, see data/PROVENANCE.md)"
        )
    return read_cases(path)
