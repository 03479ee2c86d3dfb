"""An optional Prometheus for ``balans run``: Debian's ``prometheus`` binary, when installed,
scraping the running services on their health ports with the alert rules of deploy/.

The config is written as JSON (a subset of YAML), so no YAML library is needed at run time.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from balans_devstack.processes import free_port, spawn, stop_process

RULES_DIR = Path("deploy/prometheus/rules")


def prometheus_binary() -> str | None:
    """The ``prometheus`` on PATH (Debian: ``apt-get install prometheus``), or None."""
    return shutil.which("prometheus")


def scrape_config(
    targets: dict[str, int], rules_dir: Path | None, scrape_interval: str = "15s"
) -> dict[str, object]:
    """Prometheus configuration: one job per service (job = service name), like compose."""
    config: dict[str, object] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [
            {"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for name, port in sorted(targets.items())
        ],
    }
    if rules_dir is not None and rules_dir.is_dir():
        config["rule_files"] = [str(rules_dir.resolve() / "*.yml")]
    return config


class EmbeddedPrometheus:
    """Prometheus on a free loopback port, its TSDB in ``data_dir/prometheus``."""

    def __init__(self, data_dir: Path, binary: str) -> None:
        self.data_dir = data_dir
        self.binary = binary
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self,
        targets: dict[str, int],
        rules_dir: Path | None = RULES_DIR,
        scrape_interval: str = "15s",
        timeout: float = 30.0,
        port: int | None = None,
    ) -> None:
        """Write the config for ``targets`` (service -> health port) and start scraping."""
        config = self.data_dir / "prometheus.yml"
        settings = scrape_config(targets, rules_dir, scrape_interval)
        config.write_text(json.dumps(settings, indent=2))
        self.port = port or free_port()
        self.proc = spawn(self._argv(), log_file=self.data_dir / "prometheus.log")
        self._wait_ready(timeout)

    def _argv(self) -> list[str]:
        return [
            self.binary,
            f"--config.file={self.data_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self.proc.returncode}; see "
                    f"{self.data_dir / 'prometheus.log'}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise TimeoutError(f"prometheus did not become ready on port {self.port} in {timeout} s")

    def restart(self) -> None:
        """Start again on the same port, config and data after it died."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGKILL, timeout=10)  # reaps it
        self.proc = spawn(self._argv(), log_file=self.data_dir / "prometheus.log")
        self._wait_ready(30.0)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, signal.SIGTERM)
            self.proc = None
