"""Monthly partitions are prepared ahead for every partitioned table."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from balans_db.partitions import ensure_partitions, month_start


def test_month_arithmetic_crosses_years() -> None:
    """Month starts roll over the year boundary."""
    assert month_start(date(2026, 11, 27)) == date(2026, 11, 1)
    assert month_start(date(2026, 11, 27), 2) == date(2027, 1, 1)
    assert month_start(date(2027, 12, 31), 13) == date(2029, 1, 1)


@pytest.mark.asyncio
async def test_partitions_reach_ahead_once(database_url: str) -> None:
    """Five years ahead adds the missing months to every partitioned table; again adds none."""
    first = await ensure_partitions(database_url, months_ahead=60)
    again = await ensure_partitions(database_url, months_ahead=60)
    assert "pulse_readings" in first
    assert "heat_allocation" in first
    assert all(count > 0 for count in first.values())
    assert set(again.values()) == {0}
    target = month_start(date.today(), 60)
    conn = await asyncpg.connect(database_url)
    try:
        name = f"pulse_readings_y{target.year}m{target.month:02d}"
        assert await conn.fetchval("select to_regclass($1) is not null", name)
    finally:
        await conn.close()
