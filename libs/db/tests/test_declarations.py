"""The table declarations in balans_db.tables match what the migrations build."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from balans_db import migrate
from balans_db.tables import OWNERS, metadata

# monthly partitions and the default partition of the partitioned tables
PARTITION = re.compile(r"_(y\d{4}m\d{2}|default)$")


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table":
        return name != "alembic_version" and not PARTITION.search(name or "")
    return True


def _compare(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(
        conn,
        opts={"compare_type": True, "compare_server_default": True, "include_name": _include_name},
    )
    return compare_metadata(context, metadata)


async def _differences(database_url: str) -> list[Any]:
    engine = create_async_engine(migrate.sqlalchemy_url(database_url))
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_compare)
    finally:
        await engine.dispose()


@pytest.mark.asyncio
async def test_declarations_match_the_migrations(empty_database_url: str) -> None:
    """Tables, columns, types, nullability, defaults, indexes, unique and foreign keys."""
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    differences = await _differences(empty_database_url)
    assert differences == []


def test_every_table_has_one_owner() -> None:
    assert set(OWNERS) == set(metadata.tables)
    assert set(OWNERS.values()) == {
        "allocation",
        "api",
        "balance",
        "billing",
        "ingest",
        "mbus",
        "notify",
    }
