"""Fixtures of the cross-service tests.

``pipeline``: every discovered service started as `balans run` starts them, once per session,
on a seeded two-building city; the modules that only read from a running system share it
(tests/test_e2e_pipeline.py, tests/test_ops_stack.py). Its users run one after another, and
the tests marked ``stops_pipeline`` (they stop it) after all of them (see
``pytest_collection_modifyitems``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from nats.js.errors import NotFoundError

from balans_core.nats import connect_nats
from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.settings import DatabaseSettings
from balans_devstack.processes import free_port
from balans_devstack.stack import StackUrls
from balans_devstack.supervisor import ServiceProcess, Supervisor, discover_services
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored
from balans_sim.city import CityConfig, generate_city

SIM_SEED = 3  # two small blocks (layouts 1b and 2b, 54 flats)
BUILDINGS = 2
HOLDBACK_HOURS = 2  # hours the sim leaves to its real-time path (uploads through ingest)
DEADLINE_S = 300.0  # generous: the chain takes well under 90 s on a quiet machine
TIMEZONE = "Europe/Chisinau"  # the generated sites' timezone (balans_db.topology.SiteSpec)
STREAMS = (subjects.UPLOADS_STREAM, subjects.EVENTS_STREAM, subjects.ALERTS_STREAM)
PIPELINE = "pipeline"


@dataclass(frozen=True)
class Running:
    """The started system: its database, where the api listens and the month billing must
    close."""

    supervisor: Supervisor
    services: list[ServiceProcess]
    database_url: str
    api_url: str
    closed_month: tuple[datetime, datetime]
    backfill: dict[int, ReadingsStored]  # the sim's announcement per building id


def _previous_month(now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the local calendar month before ``now``'s."""
    local = now.astimezone(ZoneInfo(TIMEZONE))
    end = datetime(local.year, local.month, 1, tzinfo=ZoneInfo(TIMEZONE))
    before = end - timedelta(days=1)
    return datetime(before.year, before.month, 1, tzinfo=ZoneInfo(TIMEZONE)), end


def _backfill_days(now: datetime, month_end: datetime) -> int:
    """Days of backfill that start a day before the previous month ends (fewest that close it)."""
    return math.ceil((now - month_end) / timedelta(days=1)) + 1


async def _purge_streams(nats_url: str) -> None:
    """Drop messages other test modules left on the session's streams (building ids repeat
    across their databases), so the services see only this system's events."""
    nc = await connect_nats(nats_url, "e2e-test")
    try:
        js = nc.jetstream()
        for stream in STREAMS:
            with contextlib.suppress(NotFoundError):
                await js.purge_stream(stream)
    finally:
        await nc.drain()


async def _backfill_announcements(nats_url: str) -> dict[int, ReadingsStored]:
    """The first ReadingsStored per building on EVENTS: the sim's backfill announcement
    (published before it reports ready; the persister's come later in stream order)."""
    nc = await connect_nats(nats_url, "e2e-test")
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subjects.READINGS_STORED_ALL, stream=subjects.EVENTS_STREAM)
        first: dict[int, ReadingsStored] = {}
        while len(first) < BUILDINGS:
            for msg in await sub.fetch(BUILDINGS, timeout=10):
                event = ReadingsStored.model_validate_json(msg.data)
                first.setdefault(event.building_id, event)
                await msg.ack()
        await sub.unsubscribe()
        return first
    finally:
        await nc.drain()


@pytest.fixture(scope="session")
def pipeline(
    session_database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Every discovered service started as `balans run` does, on a seeded small city whose
    backfill ends the previous local month."""
    database_url = session_database_url
    now = datetime.now(UTC)
    closed_month = _previous_month(now)
    days = _backfill_days(now, closed_month[1])
    epoch = now.replace(minute=0, second=0, microsecond=0) - timedelta(days=days + 1)
    city = generate_city(CityConfig(seed=SIM_SEED, buildings=BUILDINGS))
    vault = KeyVault.from_hex(DatabaseSettings().master_key)
    assert asyncio.run(seed(database_url, vault, city)) == BUILDINGS
    asyncio.run(_purge_streams(nats_url))
    log_dir = tmp_path_factory.mktemp("pipeline")
    api_port = free_port()
    ingest_port = str(free_port())
    env = {
        "BALANS_API_PORT": str(api_port),
        "BALANS_INGEST_PORT": ingest_port,
        "BALANS_SIM_INGEST_PORT": ingest_port,
        "BALANS_SIM_PRESET": "generated",
        "BALANS_SIM_BUILDINGS": str(BUILDINGS),
        "BALANS_SIM_SEED": str(SIM_SEED),
        "BALANS_SIM_EPOCH": epoch.isoformat(),
        "BALANS_SIM_BACKFILL_DAYS": str(days),
        "BALANS_SIM_BACKFILL_HOLDBACK_HOURS": str(HOLDBACK_HOURS),
        "BALANS_SIM_FAULTS_PER_WEEK": "0",
        "BALANS_SIM_OUTAGES_PER_WEEK": "0",
        "BALANS_SIM_METER_EXCHANGES_PER_YEAR": "0",  # tests/test_meter_exchange.py covers them
        "BALANS_SIM_TENANT_CHANGES_PER_YEAR": "0",
        "BALANS_SIM_GROUND_TRUTH": str(log_dir / "ground_truth.jsonl"),
        "BALANS_SIM_BOOT_FILE": str(log_dir / "sim-boot-counter"),
        "BALANS_PERIOD_CHECK_INTERVAL_S": "1",
        # the last month is closed even in the first hours of a new one
        "BALANS_PERIOD_CLOSE_LATENESS_HOURS": "0",
        "BALANS_FLEET_REFRESH_SECONDS": "1",
    }
    urls = StackUrls(database_url=database_url, nats_url=nats_url)
    supervisor = Supervisor(urls, Path(log_dir), env)
    try:
        for name, module in discover_services().items():
            supervisor.start(name, module)
        services = list(supervisor.services)
        late = supervisor.wait_ready(DEADLINE_S)
        assert not late, f"not ready: {late}; logs in {log_dir}"
        backfill = asyncio.run(_backfill_announcements(nats_url))
        yield Running(
            supervisor,
            services,
            database_url,
            f"http://127.0.0.1:{api_port}",
            closed_month,
            backfill,
        )
    finally:
        supervisor.stop()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "stops_pipeline: stops the session's pipeline system")


def _check_one_worker(config: pytest.Config, users: list[pytest.Item]) -> None:
    """Under pytest-xdist (`make test`), the users of ``pipeline`` must share a worker, and so
    one system: their modules must be in one line of ``worker_groups`` (pyproject.toml)."""
    modules = {item.nodeid.split("::", 1)[0] for item in users}
    groups = [set(line.split()) for line in config.getini("worker_groups")]
    if len(modules) > 1 and not any(modules <= group for group in groups):
        raise pytest.UsageError(
            f"{sorted(modules)} use {PIPELINE}: list them on one line of worker_groups in "
            "pyproject.toml's pytest settings, so that one pytest-xdist worker runs them all"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the users of ``pipeline`` one after another, from where the first of them is,
    and those marked ``stops_pipeline`` last among them: the system runs only while its
    tests do, and none is stopped under a test that reads from it."""
    users = [item for item in items if PIPELINE in getattr(item, "fixturenames", ())]
    if not users:
        return
    _check_one_worker(config, users)
    first = items.index(users[0])
    stopping = [item for item in users if item.get_closest_marker("stops_pipeline")]
    reading = [item for item in users if item not in stopping]
    rest = [item for item in items if item not in users]
    items[:] = rest[:first] + reading + stopping + rest[first:]
