"""Writing a batch to the readings tables: COPY, idempotently, in one transaction.

Fast path: binary COPY straight into the partitioned table, inside a savepoint. If any
row exists already (a resend JetStream could not deduplicate, or a redelivery after a
crash between commit and ack), the savepoint is rolled back and the same data goes
through a temporary staging table with ``INSERT ... ON CONFLICT DO NOTHING``. Either way
each reading is stored exactly once, by the tables' primary keys.
"""

from __future__ import annotations

import asyncpg

from balans_ingest.metrics import PERSISTER_FALLBACKS, PERSISTER_ROWS
from balans_ingest.persister.batch import Batch
from balans_ingest.persister.copy_rows import LAYOUTS, TableLayout, concatenate
from balans_ingest.persister.raw_telegrams import store_raw_telegrams


def _stage(layout: TableLayout) -> str:
    return f"stage_{layout.table}"


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Create this connection's staging tables (temporary, emptied at every commit)."""
    for layout in LAYOUTS.values():
        await conn.execute(
            f"create temp table if not exists {_stage(layout)} "
            f"(like {layout.table}) on commit delete rows"
        )


async def _copy_idempotent(conn: asyncpg.Connection, layout: TableLayout, data: bytes) -> None:
    columns = layout.column_names
    # asyncpg takes ``bytes`` for a file path; a memoryview is read as the data itself.
    try:
        async with conn.transaction():
            await conn.copy_to_table(
                layout.table, source=memoryview(data), columns=columns, format="binary"
            )
        return
    except asyncpg.UniqueViolationError:
        PERSISTER_FALLBACKS.inc()
    stage = _stage(layout)
    await conn.copy_to_table(stage, source=memoryview(data), columns=columns, format="binary")
    names = ", ".join(columns)
    await conn.execute(
        f"insert into {layout.table} ({names}) select {names} from {stage} on conflict do nothing"
    )
    await conn.execute(f"truncate {stage}")


async def write_batch(conn: asyncpg.Connection, batch: Batch) -> None:
    """Write every reading of ``batch`` and commit."""
    written: list[tuple[str, int]] = []
    async with conn.transaction():
        for record_type, parts in batch.tables.items():
            layout = LAYOUTS[record_type]
            records = concatenate(parts)
            await _copy_idempotent(conn, layout, layout.copy_data(records))
            written.append((layout.table, len(records)))
        if batch.raw_telegrams:
            batch.add_readings(await store_raw_telegrams(conn, batch.raw_telegrams))
    for table, rows in written:
        PERSISTER_ROWS.labels(table).inc(rows)
