"""The monitored stack: dashboards current with their spec and valid PromQL; then every
balans service running (as `balans run` starts them: the session's ``pipeline`` of
tests/conftest.py) answering health and metrics, exporting every metric the dashboards and
rules query, and scraped by the Prometheus `balans run` starts. That each service stops
cleanly on SIGTERM is tests/test_e2e_pipeline.py's last test, on the same system.
"""

from __future__ import annotations

import json
import re
import runpy
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from balans_devstack.prometheus import EmbeddedPrometheus, prometheus_binary
from balans_devstack.pytest_plugin import HTTP_TIMEOUT_S
from balans_devstack.supervisor import ServiceProcess

from .conftest import Running

ROOT = Path(__file__).resolve().parents[1]
GRAFANA = ROOT / "deploy" / "grafana"
METRIC = re.compile(r"\b(balans_[a-z0-9_]+|up)\b")
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


def _render() -> dict[str, str]:
    """What deploy/grafana/build_dashboards.py renders (it is a script, not a package)."""
    return runpy.run_path(str(GRAFANA / "build_dashboards.py"))["render"]()


def _dashboards() -> dict[str, dict]:
    return {
        p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))
    }


def _exprs() -> list[str]:
    return [
        target["expr"]
        for dashboard in _dashboards().values()
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def _rule_exprs() -> list[str]:
    return [
        rule["expr"]
        for path in (ROOT / "deploy/prometheus/rules").glob("*.yml")
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
        return response.status, response.read().decode()


def test_dashboards_are_current_with_their_spec() -> None:
    """The committed JSON is what build_dashboards.py renders (run it after editing)."""
    rendered = _render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert rendered == committed


def test_dashboards_cover_the_four_views_and_use_the_provisioned_datasource() -> None:
    """Ingest/network, pipeline lag, balance/alerts and business dashboards use uid prometheus."""
    dashboards = _dashboards()
    assert {d["uid"] for d in dashboards.values()} >= {
        "balans-ingest",
        "balans-pipeline",
        "balans-balance",
        "balans-business",
    }
    provisioned = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert "uid: prometheus" in provisioned
    for dashboard in dashboards.values():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "prometheus"
            assert panel["targets"], panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Every panel query parses: promtool checks them as recording rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: apt-get install prometheus (make test does as root)")
    rules = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": expr}
                    for i, expr in enumerate(_exprs())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(json.dumps(rules))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def running_services(pipeline: Running) -> list[ServiceProcess]:
    """Every registered balans service, as `balans run` starts them (the session's system)."""
    return pipeline.services


def test_every_service_answers_health_and_metrics(running_services: list[ServiceProcess]) -> None:
    """/healthz, /readyz and /metrics answer 200 on every service, metrics named for it."""
    for service in running_services:
        base = f"http://127.0.0.1:{service.health_port}"
        assert _get(f"{base}/healthz")[0] == 200
        status, body = _get(f"{base}/readyz")
        assert status == 200
        assert json.loads(body)["ready"] is True
        status, text = _get(f"{base}/metrics")
        assert status == 200
        assert "# TYPE" in text, service.name


def _exported(services: list[ServiceProcess]) -> set[str]:
    names = {"up"}
    for service in services:
        text = _get(f"http://127.0.0.1:{service.health_port}/metrics")[1]
        for family in text_string_to_metric_families(text):
            names.add(family.name)
            names.update(family.name + s for s in SUFFIXES.get(family.type, ()))
            names.update(sample.name for sample in family.samples)
    return names


def test_dashboards_and_rules_use_only_exported_metrics(
    running_services: list[ServiceProcess],
) -> None:
    """Every metric a dashboard panel or an alert rule queries is exported by a service."""
    exported = _exported(running_services)
    used = {m for expr in _exprs() + _rule_exprs() for m in METRIC.findall(expr)}
    missing = sorted(used - exported)
    assert not missing, f"queried but exported by no service: {missing}"


def test_prometheus_of_balans_run_scrapes_every_service(
    running_services: list[ServiceProcess], tmp_path: Path
) -> None:
    """The Prometheus `balans run` starts sees every service up, with the alert rules loaded."""
    binary = prometheus_binary()
    if binary is None:
        pytest.fail("prometheus not found: apt-get install prometheus (make test does as root)")
    prometheus = EmbeddedPrometheus(tmp_path, binary)
    prometheus.start(
        {s.name: s.health_port for s in running_services},
        ROOT / "deploy/prometheus/rules",
        # Prometheus spreads its first scrapes over one interval: at 15 s, the wait for
        # every target to be "up" was most of this test
        scrape_interval="1s",
    )
    try:
        deadline, health = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            targets = json.loads(_get(f"{prometheus.url}/api/v1/targets")[1])["data"]
            health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
            if len(health) == len(running_services) and set(health.values()) == {"up"}:
                break
            time.sleep(0.5)
        rules = json.loads(_get(f"{prometheus.url}/api/v1/rules")[1])["data"]["groups"]
    finally:
        prometheus.stop()
    assert health == {s.name: "up" for s in running_services}
    assert {g["name"] for g in rules} >= {"balans-availability", "balans-pipeline"}
