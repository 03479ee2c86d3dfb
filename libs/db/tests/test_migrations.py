"""Migrations build the schema from nothing and take it back to nothing."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from balans_db import migrate


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public' "
            "and tablename <> 'alembic_version'"
        )
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_upgrade_from_empty_and_downgrade_to_empty(empty_database_url: str) -> None:
    """upgrade heads creates the core tables and monthly partitions; downgrade base drops all."""
    assert await _tables(empty_database_url) == set()
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    tables = await _tables(empty_database_url)
    for expected in ("flats", "meters", "channels", "pulse_readings", "balance_groups"):
        assert expected in tables
    assert "pulse_readings_y2026m11" in tables
    assert "pulse_readings_default" not in tables  # 0002_core_partitions: none at all
    await asyncio.to_thread(migrate.downgrade, empty_database_url)
    assert await _tables(empty_database_url) == set()
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    assert "flats" in await _tables(empty_database_url)
