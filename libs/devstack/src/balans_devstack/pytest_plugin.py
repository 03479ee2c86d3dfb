"""pytest fixtures: one embedded stack per test session, a fresh database per module.

The session migrates a template database once; each test module that asks for
``database_url`` gets its own copy (``CREATE DATABASE ... TEMPLATE``), so tests own
their data without paying for migrations again. Data that takes long to build (a city with
weeks of readings) is built once per session the same way (``database_templates``).

As root, PostgreSQL runs as an unprivileged user, which must reach its data folder. Under
pytest's own temporary root that breaks whenever another pytest session starts: pytest
resets that root to mode 0700. So servers keep their data in folders of their own
(``server_tmp_path``), beside it in the system's temporary folder.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import asyncpg
import pytest

from balans_db import migrate
from balans_db.partitions import ensure_partitions
from balans_devstack.nats_server import EmbeddedNats
from balans_devstack.stack import DevStack, StackUrls

TEMPLATE = "balans_template"
# copies of a template as files (and a checkpoint, cheap without fsync) rather than through
# the WAL, PostgreSQL's default: 0.2 s instead of 0.4-0.9 s for a migrated database (its
# 1 300 relations), 1.3-2.4 s instead of 3.2 s for one of 150 MB
COPY_STRATEGY = "strategy file_copy"
_counter = itertools.count(1)
# for a test's HTTP client on a real socket: httpx gives up after 5 s, which an answer can take
# when the machine is busy (the suite's other pytest-xdist worker runs beside it)
HTTP_TIMEOUT_S = 60.0


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def server_folder(name: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"balans-{name}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # a server may still be writing its last file


@pytest.fixture
def server_tmp_path(request: pytest.FixtureRequest) -> Iterator[Path]:
    """An empty folder for embedded servers' data, removed after the test."""
    with server_folder(re.sub(r"[^A-Za-z0-9]", "_", request.node.name)[:40]) as path:
        yield path


@pytest.fixture(scope="session")
def dev_stack() -> Iterator[DevStack]:
    """The embedded PostgreSQL and NATS (or the servers named by BALANS_*_URL), not durable
    (no fsync: only a host crash could tell, and no test crashes the host)."""
    with server_folder("stack") as folder:
        stack = DevStack(folder, durable=False)
        stack.start()
        try:
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="session")
def stack_urls(dev_stack: DevStack) -> StackUrls:
    return dev_stack.urls


@pytest.fixture(scope="session")
def nats_url(stack_urls: StackUrls) -> str:
    return stack_urls.nats_url


@pytest.fixture(scope="module")
def module_nats_url() -> Iterator[str]:
    """A NATS server of this test module alone: its streams hold only what the module
    published, so a service that replays a stream from its start (notify, a new durable
    consumer) sees no other module's announcements."""
    with server_folder("module-nats") as folder:
        server = EmbeddedNats(folder)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def _admin_sql(dev_stack: DevStack, sql: str) -> None:
    if dev_stack.postgres is None:
        raise RuntimeError("per-module databases need the embedded PostgreSQL")
    dev_stack.postgres.psql(sql)


@pytest.fixture(scope="session")
def template_database(dev_stack: DevStack) -> str:
    """A migrated database that module databases are copied from, with the monthly
    partitions of the readings window (as ``balans db migrate`` makes them)."""
    _admin_sql(dev_stack, f"create database {TEMPLATE}")
    url = with_database(dev_stack.urls.database_url, TEMPLATE)
    migrate.upgrade(url)
    asyncio.run(ensure_partitions(url))
    return url


@contextmanager
def template_copy(dev_stack: DevStack, template_url: str, stem: str) -> Iterator[str]:
    """A new database copied from ``template_url``'s (named after ``stem``), dropped after."""
    name = f"t_{re.sub(r'[^a-z0-9]', '_', stem.lower())[:40]}_{next(_counter)}"
    template = template_url.rsplit("/", 1)[1]
    _admin_sql(dev_stack, f"create database {name} template {template} {COPY_STRATEGY}")
    try:
        yield with_database(dev_stack.urls.database_url, name)
    finally:
        _admin_sql(dev_stack, f"drop database if exists {name} with (force)")


@pytest.fixture(scope="module")
def database_url(
    dev_stack: DevStack, template_database: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh migrated database for this test module, dropped afterwards."""
    with template_copy(dev_stack, template_database, Path(str(request.node.path)).stem) as url:
        yield url


@pytest.fixture(scope="module")
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection to this test module's database (``database_url``), closed after it."""
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def session_database_url(dev_stack: DevStack, template_database: str) -> Iterator[str]:
    """A fresh migrated database for a fixture shared by several test modules."""
    with template_copy(dev_stack, template_database, "session") as url:
        yield url


class DatabaseTemplates:
    """Databases built once per session and copied for each test module that asks: a seeded
    city with weeks of synthetic data takes seconds to build and a fraction of one to copy.
    Copies share the build's clock: data made "up to now" ends where the build ran."""

    def __init__(self, dev_stack: DevStack, migrated_url: str) -> None:
        self._dev_stack = dev_stack
        self._migrated = migrated_url
        self._built: dict[str, str] = {}

    @asynccontextmanager
    async def copy(
        self, key: str, build: Callable[[str], Awaitable[None]], stem: str
    ) -> AsyncIterator[str]:
        """A fresh copy (named after ``stem``) of the database that ``build`` fills from a
        migrated one, built at the first ask for ``key``; dropped after the block."""
        if key not in self._built:
            name = f"tpl_{re.sub(r'[^a-z0-9]', '_', key.lower())[:40]}"
            _admin_sql(
                self._dev_stack, f"create database {name} template {TEMPLATE} {COPY_STRATEGY}"
            )
            url = with_database(self._dev_stack.urls.database_url, name)
            try:
                await build(url)
            except BaseException:
                _admin_sql(self._dev_stack, f"drop database if exists {name} with (force)")
                raise
            self._built[key] = url
        with template_copy(self._dev_stack, self._built[key], stem) as url:
            yield url


@pytest.fixture(scope="session")
def database_templates(dev_stack: DevStack, template_database: str) -> DatabaseTemplates:
    return DatabaseTemplates(dev_stack, template_database)


@pytest.fixture(scope="module")
def empty_database_url(dev_stack: DevStack, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with no schema at all (for migration tests)."""
    name = f"e_{next(_counter)}"
    _admin_sql(dev_stack, f"create database {name}")
    try:
        yield with_database(dev_stack.urls.database_url, name)
    finally:
        _admin_sql(dev_stack, f"drop database if exists {name} with (force)")
