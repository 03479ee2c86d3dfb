"""``balans mbus decode``: JSON out, exit status tells success."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from balans_mbus.cli import register

FULL = (
    "2E442D2C6767676730048D2039D1684020BCDB7803062C000043060000000314630000426C7F2A022D130001FF2100"
)
COMPACT = "25442D2C6767676730048D203AD2684020D81579E7F1D5902C00000000006300007F2A130000"


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:
        """A second command so that ``mbus`` stays a sub-command, as under ``balans``."""

    return app


def test_decode_prints_records_as_json() -> None:
    """Each telegram gives one JSON line; the compact one uses the format of the full one."""
    result = CliRunner().invoke(_app(), ["mbus", "decode", FULL, COMPACT])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert len(lines) == 2
    assert lines[1]["values"]["energy_kwh"] == 44.0
    assert lines[1]["header"]["manufacturer"] == "KAM"


def test_decode_failure_exits_1_with_reason() -> None:
    """An undecodable telegram prints its failure and exits with status 1."""
    result = CliRunner().invoke(_app(), ["mbus", "decode", COMPACT])
    assert result.exit_code == 1
    assert json.loads(result.output)["failure"] == "unknown_format"


def test_decode_rejects_non_hex_key() -> None:
    """A key that is not hex is a usage error, not a traceback."""
    result = CliRunner().invoke(_app(), ["mbus", "decode", FULL, "--key", "zz"])
    assert result.exit_code == 2
