"""Build the provisioned Grafana dashboards (deploy/grafana/dashboards/*.json) from one spec.

Dashboards are code here: edit the panels below, run
``.venv/bin/python deploy/grafana/build_dashboards.py`` and commit the JSON it writes.
tests/test_ops_dashboards.py checks the JSON is current and that every metric it queries
is exported by a running service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
WIDTH = {"stat": 6, "timeseries": 12}
HEIGHT = {"stat": 4, "timeseries": 8}


@dataclass(frozen=True)
class Panel:
    """One panel: a title, PromQL queries (legend -> expr), a unit and a kind."""

    title: str
    queries: dict[str, str]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: list[Panel] = field(default_factory=list)


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, object]:
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": WIDTH[panel.kind], "h": HEIGHT[panel.kind]},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}
        if panel.kind == "timeseries"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
            }
            for i, (legend, expr) in enumerate(panel.queries.items())
        ],
    }


def dashboard_json(dashboard: Dashboard) -> dict[str, object]:
    """Grafana's dashboard model; panels flow left to right, 24 columns to a row."""
    panels, x, y, row_height = [], 0, 0, 0
    for panel_id, panel in enumerate(dashboard.panels, start=1):
        width = WIDTH[panel.kind]
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel, panel_id, x, y))
        x, row_height = x + width, max(row_height, HEIGHT[panel.kind])
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["balans"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def rate(metric: str, by: str = "", window: str = "5m") -> str:
    """``sum [by (labels)] (rate(metric[window]))``."""
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}[{window}]))"


def p95(histogram: str, by: str = "") -> str:
    """95th percentile of a histogram over 5 minutes."""
    labels = ", ".join(["le", *([by] if by else [])])
    return f"histogram_quantile(0.95, sum by ({labels}) (rate({histogram}_bucket[5m])))"


OPENED = 'balans_balance_alert_transitions_total{transition="opened"}'
OPEN_BY_KIND = "sum by (kind) (balans_balance_alerts_open)"

DASHBOARDS = [
    Dashboard(
        uid="balans-ingest",
        title="balans / Ingest and network health",
        description="Concentrator connections, frames, refusals by reason, JetStream publish "
        "latency, and the radio network seen through the fleet gauges.",
        panels=[
            Panel("Services up", {"{{job}}": "up"}),
            Panel(
                "Concentrators silent > 2 h",
                {"silent": "balans_fleet_concentrators_silent"},
                kind="stat",
            ),
            Panel(
                "Modules with a low battery",
                {"low": "balans_fleet_modules_low_battery"},
                kind="stat",
            ),
            Panel("Open concentrator connections", {"open": "balans_ingest_open_connections"}),
            Panel(
                "Frames per second, by type",
                {"{{type}}": rate("balans_ingest_frames_total", "type")},
                unit="ops",
            ),
            Panel(
                "Refused frames and dropped connections per second, by reason",
                {"{{reason}}": rate("balans_ingest_errors_total", "reason")},
                unit="ops",
            ),
            Panel(
                "JetStream publish latency (p95)",
                {"p95": p95("balans_ingest_publish_seconds")},
                unit="s",
            ),
            Panel(
                "Records per second, by type",
                {"{{type}}": rate("balans_ingest_records_total", "type")},
                unit="ops",
            ),
            Panel(
                "Duplicate uploads per second: resends, and resets (a reused boot counter: lost)",
                {"{{kind}}": rate("balans_ingest_duplicate_uploads_total", "kind")},
                unit="ops",
            ),
        ],
    ),
    Dashboard(
        uid="balans-pipeline",
        title="balans / Pipeline lag",
        description="From JetStream to PostgreSQL to per-flat heat: backlog, throughput, time.",
        panels=[
            Panel(
                "Persister backlog (messages)",
                {"{{stream}}/{{consumer}}": "balans_fleet_jetstream_consumer_pending"},
            ),
            Panel(
                "Messages awaiting ack",
                {"{{stream}}/{{consumer}}": "balans_fleet_jetstream_consumer_ack_pending"},
            ),
            Panel(
                "Persister: uploads committed per second",
                {"messages": rate('balans_persister_messages_total{outcome="ok"}')},
                unit="ops",
            ),
            Panel(
                "Persister: rows written per second, by table",
                {"{{table}}": rate("balans_persister_rows_total", "table")},
                unit="ops",
            ),
            Panel(
                "Persister batch time (p95)",
                {"p95": p95("balans_persister_batch_seconds")},
                unit="s",
            ),
            Panel(
                "Persister errors per second, by kind",
                {"{{kind}}": rate("balans_persister_errors_total", "kind")},
                unit="ops",
            ),
            Panel(
                "Stream fill (share of limit)",
                {
                    "{{stream}}": "balans_fleet_jetstream_stream_bytes"
                    " / (balans_fleet_jetstream_stream_max_bytes > 0)"
                },
                unit="percentunit",
            ),
            Panel(
                "Allocation: flat-hours per second (new, recomputed after late data)",
                {"{{kind}}": rate("balans_allocation_flat_hours_total", "kind")},
                unit="ops",
            ),
            Panel(
                "Allocation compute time per batch of buildings (p95)",
                {"p95": p95("balans_allocation_compute_seconds")},
                unit="s",
            ),
            Panel(
                "Allocation events per second, by outcome",
                {"{{outcome}}": rate("balans_allocation_messages_total", "outcome")},
                unit="ops",
            ),
        ],
    ),
    Dashboard(
        uid="balans-balance",
        title="balans / Balance and alerts",
        description="Balance groups evaluated every hour, alerts by kind, analysis time.",
        panels=[
            Panel("Open alerts", {"open": "sum(balans_balance_alerts_open)"}, kind="stat"),
            Panel(
                "Alerts opened, last 24 h", {"opened": f"sum(increase({OPENED}[24h]))"}, kind="stat"
            ),
            Panel("Open alerts by kind", {"{{kind}}": OPEN_BY_KIND}),
            Panel(
                "Alerts opened per hour, by kind",
                {"{{kind}}": f"sum by (kind) (increase({OPENED}[1h]))"},
            ),
            Panel(
                "Balance groups evaluated per second",
                {"groups": rate("balans_balance_groups_evaluated_total")},
                unit="ops",
            ),
            Panel(
                "Building events per second, by what they did (turn, deferred, missing, ...)",
                {"{{when}}": rate("balans_balance_analyses_total", "when")},
                unit="ops",
            ),
            Panel(
                "Building analysis time (p95)",
                {"p95": p95("balans_balance_analysis_seconds")},
                unit="s",
            ),
            Panel(
                "Analysis errors per second",
                {"errors": rate("balans_balance_analysis_errors_total")},
                unit="ops",
            ),
            Panel(
                "Allocation events consumed per second, by outcome",
                {"{{outcome}}": rate("balans_balance_messages_total", "outcome")},
                unit="ops",
            ),
            Panel(
                "Invalid group requests per second",
                {"{{family}}": rate("balans_balance_invalid_messages_total", "family")},
                unit="ops",
            ),
        ],
    ),
    Dashboard(
        uid="balans-business",
        title="balans / Business overview",
        description="The fleet at a glance: concentrators, modules, data quality, alerts, "
        "invoices and the portal.",
        panels=[
            Panel("Concentrators", {"all": "balans_fleet_concentrators"}, kind="stat"),
            Panel("Silent > 2 h", {"silent": "balans_fleet_concentrators_silent"}, kind="stat"),
            Panel(
                "Modules reporting", {"reporting": "balans_fleet_modules_reporting"}, kind="stat"
            ),
            Panel("Low battery", {"low": "balans_fleet_modules_low_battery"}, kind="stat"),
            Panel(
                "Share of estimated hourly values, by utility",
                {"{{utility}}": "balans_fleet_estimated_share"},
                unit="percentunit",
            ),
            Panel("Open balance alerts by kind", {"{{kind}}": OPEN_BY_KIND}),
            Panel(
                "Invoices and corrections issued per day",
                {"{{kind}}": "sum by (kind) (increase(balans_billing_invoices_issued_total[1d]))"},
            ),
            Panel(
                "Portal and API requests per second, by status",
                {"{{status}}": rate("balans_api_requests_total", "status")},
                unit="reqps",
            ),
            Panel(
                "API latency (p95) by route",
                {"{{route}}": p95("balans_api_request_seconds", "route")},
                unit="s",
            ),
            Panel(
                "Downlink commands per hour, by status",
                {"{{status}}": "sum by (status) (increase(balans_api_commands_total[1h]))"},
            ),
        ],
    ),
]


def render() -> dict[str, str]:
    """file name -> JSON text of every dashboard."""
    return {
        f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2, ensure_ascii=False) + "\n"
        for d in DASHBOARDS
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
