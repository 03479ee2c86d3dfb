"""The allocation migration branch creates its tables and takes them away again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from balans_db import migrate

ALLOCATION_TABLES = {
    "meter_consumption",
    "heat_allocation",
    "allocation_building_hours",
    "allocation_watermarks",
}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_allocation_branch_upgrades_and_downgrades(empty_database_url: str) -> None:
    """upgrade creates the allocation tables and partitions; downgrade to core drops them."""
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    tables = await _tables(empty_database_url)
    assert tables >= ALLOCATION_TABLES
    assert "meter_consumption_y2026m11" in tables
    assert "heat_allocation_default" not in tables  # 0002_core_partitions: none at all
    await asyncio.to_thread(migrate.downgrade, empty_database_url, "allocation@0001_core")
    tables = await _tables(empty_database_url)
    assert not ALLOCATION_TABLES & tables
    assert "flats" in tables
