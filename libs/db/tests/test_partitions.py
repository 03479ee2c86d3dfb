"""Monthly partitions are prepared ahead for every partitioned table."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import asyncpg
import pytest

from balans_db import migrate
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


async def _fetch(url: str, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_impossible_rows_never_block_partitions(empty_database_url: str) -> None:
    """A database from before: rows dated 2099 and 1999 sit in the default partition with
    one of last month (its partition was missing). The migration puts last
    month's row back into a monthly partition, keeps the impossible rows aside in
    pulse_readings_out_of_range, and removes every default partition, so partitions for any
    month can be created, and a row outside every partition is refused, not hidden."""
    url = empty_database_url
    await asyncio.to_thread(migrate.upgrade, url, "allocation_0001")
    last_month = month_start(datetime.now(UTC).date(), -1)
    part = f"pulse_readings_y{last_month.year}m{last_month.month:02d}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"drop table {part}")
        await conn.executemany(
            "insert into pulse_readings (module_serial, input, ts, count) values (1, 0, $1, 5)",
            [
                (datetime(2099, 1, 15, tzinfo=UTC),),
                (datetime(1999, 6, 1, tzinfo=UTC),),
                (datetime(last_month.year, last_month.month, 2, tzinfo=UTC),),
            ],
        )
        assert await conn.fetchval("select count(*) from pulse_readings_default") == 3
    finally:
        await conn.close()

    await asyncio.to_thread(migrate.upgrade, url)
    await ensure_partitions(url)
    conn = await asyncpg.connect(url)
    try:  # the month of the impossible row: this is what the default partition blocked
        created = await conn.fetchval(
            "select balans_ensure_partitions('pulse_readings', '2099-01-01', '2099-02-01')"
        )
    finally:
        await conn.close()

    defaults = await _fetch(url, "select relname from pg_class where relname like '%\\_default'")
    kept = await _fetch(url, "select ts from pulse_readings_out_of_range order by ts")
    live = await _fetch(url, "select ts from pulse_readings")
    assert defaults == []
    assert [r["ts"].year for r in kept] == [1999, 2099]
    assert [(r["ts"].year, r["ts"].month) for r in live] == [(last_month.year, last_month.month)]
    assert created == 1
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
            await conn.execute(
                "insert into pulse_readings (module_serial, input, ts, count) "
                "values (1, 0, '2106-02-01', 1)"
            )
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_partitions_reach_back_to_the_horizon(database_url: str) -> None:
    """The month readings_horizon_days back gets its partition (older readings are refused,
    so nothing older needs one)."""
    days = (datetime.now(UTC).date() - date(2024, 6, 15)).days  # before the first partition
    name = "pulse_readings_y2024m06"
    conn = await asyncpg.connect(database_url)
    try:
        assert not await conn.fetchval("select to_regclass($1) is not null", name)
        await ensure_partitions(database_url, months_ahead=0, horizon_days=days)
        assert await conn.fetchval("select to_regclass($1) is not null", name)
    finally:
        await conn.close()
