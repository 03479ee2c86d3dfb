"""``balans config`` lists every service's settings once, and the README shows that list."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict
from typer.testing import CliRunner

from balans_core.cli import _register_contributions, app
from balans_core.config_doc import declared_by, markdown_tables, with_tables

README = Path(__file__).resolve().parents[3] / "README.md"


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
    repeated = sorted({v for v in variables if variables.count(v) > 1})
    assert repeated == []


def test_no_two_settings_classes_declare_the_same_variable() -> None:
    """One name means one thing: a variable two services need lives in a class both inherit
    (CommonSettings, DatabaseSettings), never declared twice with its own default."""
    twice = {var: owners for var, owners in declared_by().items() if len(owners) > 1}
    assert twice == {}, f"declared by more than one settings class: {twice}"


def test_a_variable_declared_twice_is_found() -> None:
    """The check above sees a redeclaration (the simulator once declared ingest's bind
    address as its target) even when the defaults differ."""

    class BindsIngest(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="BALANS_")
        ingest_host: str = "0.0.0.0"

    class DialsIngest(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="BALANS_")
        ingest_host: str = "127.0.0.1"

    found = declared_by([BindsIngest, DialsIngest])
    assert list(found) == ["BALANS_INGEST_HOST"]
    assert [name.rsplit(".", 1)[1] for name in found["BALANS_INGEST_HOST"]] == [
        "BindsIngest",
        "DialsIngest",
    ]


def test_readme_configuration_is_the_generated_one() -> None:
    """README.md's Configuration tables are what ``balans config`` prints today."""
    text = README.read_text()
    assert with_tables(text, markdown_tables()) == text, (
        "README.md's configuration is stale: run `.venv/bin/balans config --readme README.md`"
    )


def test_a_readme_without_markers_is_refused() -> None:
    with pytest.raises(ValueError, match="markers"):
        with_tables("# no markers here\n", markdown_tables())
