"""The import contracts ``make lint`` checks cover every package of the workspace: a new
service or library cannot slip past them by not being listed."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _packages(kind: str) -> set[str]:
    return {p.name for p in ROOT.glob(f"{kind}/*/src/balans_*") if p.is_dir()}


def _contract(config: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in config["contracts"] if c["type"] == kind]
    return found


def test_every_package_is_under_the_import_contracts() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    services, libs = _packages("services"), _packages("libs")
    assert services
    assert libs
    assert set(config["root_packages"]) == services | libs
    assert set(_contract(config, "independence")["modules"]) == services
    forbidden = _contract(config, "forbidden")
    assert set(forbidden["source_modules"]) == libs
    assert set(forbidden["forbidden_modules"]) == services
