"""``balans mbus conformance DIR`` on the copied corpus and on the standard-built telegrams."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer
from typer.testing import CliRunner, Result

from balans_mbus.cli import register

from .corpus import corpus_path
from .standard_cases import case_file_text

STANDARD_FOLDER = Path(__file__).resolve().parent / "data" / "standard"


def _run(folder: Path) -> Result:
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:
        """A second command so that ``mbus`` stays a sub-command, as under ``balans``."""

    return CliRunner().invoke(app, ["mbus", "conformance", str(folder)])


def _medium_line(output: str, medium: str) -> list[int]:
    """The counts (cases, decoded, correct, incomplete, wrong, refused) of one medium."""
    for line in output.splitlines():
        if line.startswith(medium) and line[len(medium) :].startswith("  "):
            return [int(number) for number in line[len(medium) :].split()]
    raise AssertionError(f"no line for {medium!r} in:\n{output}")


def test_corpus_report_per_medium_and_summary(tmp_path: Path) -> None:
    """The copied corpus: 104/104 standard cases correct, nothing wrong, every refusal named."""
    shutil.copy(corpus_path(), tmp_path)
    result = _run(tmp_path)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == (
        "summary: 133 cases, 114 decoded, 104 correct, 7 incomplete, 0 wrong, 19 refused; "
        "standard cases 104/104 correct"
    )
    assert _medium_line(result.output, "heat cost allocator") == [40, 30, 26, 2, 0, 10]
    refused = [line for line in lines if line.startswith("  refused")]
    assert len(refused) == 19
    assert all(": " in line.split(":", 1)[1] for line in refused), refused
    assert "  refused    sharky#0: unsupported_security: security mode 21" in result.output


def test_standard_built_folder_report() -> None:
    """Water, electricity, gas, heat and the four failure classes: all correct; the one
    telegram without its key is refused with the reason."""
    result = _run(STANDARD_FOLDER)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == (
        "summary: 10 cases, 9 decoded, 9 correct, 0 incomplete, 0 wrong, 1 refused; "
        "standard cases 9/9 correct"
    )
    assert _medium_line(result.output, "cold water") == [2, 1, 1, 0, 0, 1]
    assert _medium_line(result.output, "electricity") == [1, 1, 1, 0, 0, 0]
    assert _medium_line(result.output, "gas") == [1, 1, 1, 0, 0, 0]
    assert _medium_line(result.output, "water") == [3, 3, 3, 0, 0, 0]
    assert "  refused    nokey#0: key_missing: payload is encrypted (mode 5)" in result.output


def test_standard_folder_is_what_the_builders_write() -> None:
    """The committed case file is the builders' output (regenerate with write_case_file)."""
    committed = (STANDARD_FOLDER / "standard_telegrams.jsonl").read_text(encoding="utf-8")
    assert committed == case_file_text()


def test_a_wrong_value_is_listed_and_fails(tmp_path: Path) -> None:
    """A case whose expected value the decoder contradicts is 'wrong' and exits 1."""
    rows = [json.loads(line) for line in case_file_text().splitlines()]
    (gas,) = [row for row in rows if row["case_id"] == "gas#0"]
    gas["expected_summary"]["total_volume_m3"]["value"] = 28.50427  # m3 read as litres
    (tmp_path / "gas.jsonl").write_text(json.dumps(gas) + "\n")
    result = _run(tmp_path)
    assert result.exit_code == 1
    assert "  wrong      gas#0: total_volume_m3 expected 28.50427, got 28504.27" in result.output
    assert "0 correct, 0 incomplete, 1 wrong" in result.output


def test_unreadable_case_file_names_file_and_line(tmp_path: Path) -> None:
    """A row that is not a case is an error naming file, line and field; exit status 2."""
    good = case_file_text().splitlines()[0]
    bad = json.dumps({"case_id": "x", "telegrams_hex": ["not hex"]})
    (tmp_path / "cases.jsonl").write_text(good + "\n" + bad + "\n")
    result = _run(tmp_path)
    assert result.exit_code == 2
    assert "cases.jsonl:2: telegrams_hex" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run(empty)
    assert result.exit_code == 2
    assert "holds no *.jsonl case file" in result.output
