"""Fixtures of the ingest tests: a NATS server of their own (it gets restarted and its
streams consumed) and a seeded building whose concentrator key the tests know."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from balans_db.secrets import KeyVault
from balans_db.topology import SiteSpec, regular_building, write_building
from balans_devstack.nats_server import EmbeddedNats

DEVICE_KEY = bytes(range(32))


@pytest.fixture(scope="module")
def own_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """A JetStream server for this test module alone (restartable on the same port)."""
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("nats")))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Site:
    """One seeded building whose concentrator key the tests know."""

    database_url: str
    serial: int
    building_id: int
    modules: list[int]
    key: bytes = DEVICE_KEY


async def seed_building(database_url: str, index: int) -> Site:
    """A small 1a building (heat meters on 4-input modules) whose key is DEVICE_KEY."""
    spec = regular_building(
        code=f"ingest-test-{index}",
        name="Ingest test block",
        address="str. Test 1",
        site=SiteSpec("ingest-site", "Test", "str. Test 1", 47.0, 28.8),
        layout="1a",
        floors=2,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=index,
    )
    conn = await asyncpg.connect(database_url)
    try:
        building_id = await write_building(conn, spec, KeyVault(), device_key=DEVICE_KEY)
        assert building_id is not None
        modules = await conn.fetch(
            "select serial from radio_modules where building_id = $1 order by serial", building_id
        )
    finally:
        await conn.close()
    return Site(database_url, spec.concentrator_serial, building_id, [r[0] for r in modules])


@pytest.fixture(scope="module")
async def site(database_url: str) -> Site:
    """The building most tests upload for."""
    return await seed_building(database_url, 7)


@pytest.fixture(scope="module")
async def neighbour(database_url: str) -> Site:
    """A second building, for a concentrator that must not notice the first's trouble."""
    return await seed_building(database_url, 8)
