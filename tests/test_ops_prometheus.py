"""The Prometheus side of deploy/: scrape configs and alert rules pass promtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from balans_devstack.prometheus import RULES_DIR, scrape_config

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS = ROOT / "deploy" / "prometheus"


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run promtool (Debian's `prometheus` package; scripts/os-packages.sh installs it)."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: apt-get install prometheus (make test does as root)")
    return subprocess.run(
        [binary, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_compose_scrape_config_is_valid() -> None:
    """deploy/prometheus/prometheus.yml passes `promtool check config`."""
    result = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    """Every rule file passes `promtool check rules`."""
    files = sorted(str(p) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert files
    result = promtool("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_fire_on_their_cases() -> None:
    """The promtool unit tests of the rules pass (each alert fires on its case, not before)."""
    result = promtool("test", "rules", "balans_test.yml", cwd=PROMETHEUS / "tests")
    assert result.returncode == 0, result.stdout + result.stderr


def test_balans_run_scrape_config_is_valid(tmp_path: Path) -> None:
    """The config `balans run` writes for the embedded services passes promtool, rules too."""
    config = scrape_config({"ingest": 4101, "api": 4102}, ROOT / RULES_DIR)
    path = tmp_path / "prometheus.yml"
    path.write_text(json.dumps(config))
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"SUCCESS: [1-9]\d* rules found", result.stdout + result.stderr)


def test_every_balans_service_is_scraped_by_compose_prometheus() -> None:
    """Each job in prometheus.yml is a service of compose.yaml, and every balans service has one."""
    scraped = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    long_running = {
        name
        for name, svc in compose.items()
        if svc.get("image", "").startswith("${BALANS_IMAGE") and svc.get("restart") != "no"
    }
    assert long_running <= scraped
    assert scraped - {"prometheus"} <= set(compose)
