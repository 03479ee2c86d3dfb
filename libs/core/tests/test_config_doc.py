"""``balans config`` lists every service's settings once."""

from __future__ import annotations

from typer.testing import CliRunner

from balans_core.cli import _register_contributions, app


def test_config_lists_each_setting_of_every_service_once() -> None:
    """Shared and service settings appear, each variable under exactly one class."""
    _register_contributions()
    result = CliRunner().invoke(app, ["config", "--markdown"])
    assert result.exit_code == 0, result.output
    variables = [
        line.split("`")[1] for line in result.output.splitlines() if line.startswith("| `")
    ]
    for expected in ("BALANS_DATABASE_URL", "BALANS_INGEST_PORT", "BALANS_API_PORT"):
        assert expected in variables
    assert variables.count("BALANS_DATABASE_URL") == 1  # inherited fields are not repeated
