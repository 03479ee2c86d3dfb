"""compose.yaml cannot run here (no container engine): read it and hold it to the code."""

from __future__ import annotations

import importlib
import inspect
import re
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml

from balans_core.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
BALANS = {name: svc for name, svc in SERVICES.items() if svc["image"].startswith("${BALANS_IMAGE")}
LONG_RUNNING = {name: svc for name, svc in BALANS.items() if svc.get("restart") != "no"}
NATS_NODES = ("nats-1", "nats-2", "nats-3")
INFRA_IMAGES = {
    **dict.fromkeys(NATS_NODES, "nats:"),
    "postgres": "postgres:",
    "prometheus": "prom/prometheus:",
    "grafana": "grafana/grafana:",
}


def _settings_fields(module: str) -> set[str]:
    """BALANS_* names the settings classes next to ``module`` accept."""
    package = module.removesuffix(".__main__")
    candidates = [f"{package}.settings", f"{package.split('.')[0]}.settings"]
    fields: set[str] = set()
    for name in candidates:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(mod, inspect.isclass):
            if issubclass(cls, CommonSettings):
                fields |= {f"BALANS_{f.upper()}" for f in cls.model_fields}
    return fields


def _module_of(command: list[str]) -> str:
    if command[:2] == ["python", "-m"]:
        return command[2]
    if command[:2] == ["balans", "db"]:
        return "balans_db"
    raise AssertionError(f"unexpected command {command}")


def test_infrastructure_uses_official_images_with_healthchecks() -> None:
    """NATS, PostgreSQL, Prometheus and Grafana come from their official images, pinned."""
    for name, prefix in INFRA_IMAGES.items():
        image = SERVICES[name]["image"]
        assert image.startswith(prefix), (name, image)
        assert not image.endswith(":latest")
        assert SERVICES[name]["healthcheck"]["test"][0] == "CMD"


def test_nats_runs_jetstream() -> None:
    """Three NATS containers form one JetStream cluster, each with its store on its own
    volume; balans knows all three and replicates its streams on them."""
    conf = (ROOT / "deploy" / "nats" / "nats.conf").read_text()
    assert re.search(r"jetstream\s*\{[^}]*store_dir:\s*/data", conf)
    for node in NATS_NODES:
        assert f"nats-route://{node}:6222" in conf
        assert SERVICES[node]["environment"]["NATS_SERVER_NAME"] == node
        assert any(v.endswith(":/data") for v in SERVICES[node]["volumes"])
    volumes = [v for node in NATS_NODES for v in SERVICES[node]["volumes"] if v.endswith(":/data")]
    assert len(set(volumes)) == len(NATS_NODES)
    env = COMPOSE["x-balans-env"]
    assert env["BALANS_NATS_URL"].split(",") == [f"nats://{n}:4222" for n in NATS_NODES]
    assert env["BALANS_NATS_STREAM_REPLICAS"] == "3"


@pytest.mark.parametrize("name", sorted(LONG_RUNNING))
def test_service_has_image_command_environment_healthcheck(name: str) -> None:
    """Every balans service has its image, command, environment and a /healthz healthcheck."""
    svc = LONG_RUNNING[name]
    assert svc["image"]
    assert svc["command"][:2] == ["python", "-m"]
    env = svc["environment"]
    for key in ("BALANS_DATABASE_URL", "BALANS_NATS_URL", "BALANS_HEALTH_PORT"):
        assert key in env, (name, key)
    assert env["BALANS_HEALTH_HOST"] == "0.0.0.0"
    check = " ".join(svc["healthcheck"]["test"])
    assert f"127.0.0.1:{env['BALANS_HEALTH_PORT']}/healthz" in check
    assert svc["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("name", sorted(BALANS))
def test_environment_names_are_real_settings(name: str) -> None:
    """Each BALANS_* variable compose sets is a field of the settings the process reads."""
    accepted = _settings_fields(_module_of(BALANS[name]["command"]))
    assert accepted, f"no settings class found for {name}"
    unknown = {k for k in BALANS[name]["environment"] if k.startswith("BALANS_")} - accepted
    assert not unknown, f"{name}: {sorted(unknown)} are not settings fields"


def test_every_registered_service_runs_in_compose() -> None:
    """Each entry of the `balans.services` group is a compose service running that module."""
    registered = {ep.name: ep.value for ep in entry_points(group="balans.services")}
    commands = {name: svc["command"] for name, svc in LONG_RUNNING.items()}
    for name, module in registered.items():
        assert name in commands, f"{name} missing from compose.yaml"
        assert commands[name][2] in (module, module.removesuffix(".__main__")), name


@pytest.mark.parametrize("name", sorted(BALANS))
def test_balans_image_is_built_from_the_dockerfile(name: str) -> None:
    """Every container of the balans image can build it, so no order of `up` pulls it."""
    assert BALANS[name]["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}


def test_volumes_and_mounted_files_exist() -> None:
    """Named volumes are declared and bind-mounted files are in the repository."""
    declared = set(COMPOSE["volumes"])
    for svc in SERVICES.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in declared, source


def test_postgres_is_durable_and_shows_what_statements_cost() -> None:
    """compose's PostgreSQL keeps fsync, synchronous_commit and full_page_writes on (nothing
    acknowledged is lost with the host), takes checkpoints by time rather than by the hour's
    WAL, and loads pg_stat_statements (docs/operations.md "PostgreSQL")."""
    command = SERVICES["postgres"]["command"]
    assert command[0] == "postgres"
    assert all(flag == "-c" for flag in command[1::2]), command
    settings = dict(value.split("=", 1) for value in command[2::2])
    for durable in ("fsync", "synchronous_commit", "full_page_writes"):
        assert settings.get(durable, "on") == "on", (durable, settings)
    assert settings["shared_preload_libraries"] == "pg_stat_statements"
    assert settings["max_wal_size"].endswith("GB")
    assert int(settings["max_wal_size"].removesuffix("GB")) >= 4
