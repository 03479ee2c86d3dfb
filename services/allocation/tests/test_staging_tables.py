"""allocation's staging tables live as long as their connection and are empty at every
write's start: made once, not once per batch (each time meant catalog rows written and
deleted, an invalidation to every backend and the statements reading them planned again)."""

from __future__ import annotations

import asyncpg

from balans_allocation import storage

STAGE_OIDS = "select " + ", ".join(
    f"to_regclass('pg_temp.{stage}')::oid" for stage in storage.STAGES.values()
)


STRAY_ROW = """insert into _stage_building_hours (building_id, hour, building_kwh,
    flats_measured_kwh, common_kwh, estimated_area_fraction) values (1, now(), 0, 0, 0, 0)"""


async def _rows_staged(conn: asyncpg.Connection) -> list[int]:
    return [await conn.fetchval(f"select count(*) from {s}") for s in storage.STAGES.values()]


async def test_staging_tables_outlive_the_batch_and_are_emptied_at_its_commit(
    conn: asyncpg.Connection,
) -> None:
    """The tables a batch wrote through are the same tables the next batch uses, and the
    commit left them empty."""
    async with conn.transaction():
        await storage.write_results(conn, [])
        made = tuple(await conn.fetchrow(STAGE_OIDS))
        await conn.execute(STRAY_ROW)
    assert None not in made
    assert tuple(await conn.fetchrow(STAGE_OIDS)) == made  # not dropped at the commit
    assert await _rows_staged(conn) == [0, 0, 0]
    async with conn.transaction():
        await storage.write_results(conn, [])
        assert tuple(await conn.fetchrow(STAGE_OIDS)) == made  # not made again


async def test_a_second_write_in_one_transaction_starts_from_empty_stages(
    conn: asyncpg.Connection,
) -> None:
    """Rows a first write left in the staging tables (emptied only at the commit) are
    gone before a second write in the same transaction stages its own."""
    async with conn.transaction():
        await storage.write_results(conn, [])
        await conn.execute(STRAY_ROW)
        assert await _rows_staged(conn) == [0, 0, 1]
        await storage.write_results(conn, [])
        assert await _rows_staged(conn) == [0, 0, 0]
