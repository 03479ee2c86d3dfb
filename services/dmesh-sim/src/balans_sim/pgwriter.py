"""The fast path: readings straight into PostgreSQL, bypassing ingest.

For detector benchmarks and quick backfills. Rows are written through ingest's published
writer (:func:`balans_db.queries.ingest.insert_readings`), so they land with the same
meaning as the persister's (cumulative registers at the end of each hour, hourly means),
idempotently. Readings lost in the mesh are left out here too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import numpy as np

from balans_db.queries.ingest import READING_COLUMNS, insert_readings
from balans_sim.engine import Chunk

PULSES, TEMPERATURES, STATUS, EVENTS = READING_COLUMNS


def _ts(chunk: Chunk) -> list[datetime]:
    return [datetime.fromtimestamp(int(t), tz=UTC) for t in chunk.ts_unix]


def _rows(chunk: Chunk) -> dict[str, list[tuple[object, ...]]]:
    ts = _ts(chunk)
    h, j = np.nonzero(chunk.pulse_ok)
    rows: dict[str, list[tuple[object, ...]]] = {}
    rows[PULSES] = list(
        zip(
            chunk.pulse_module[j].tolist(),
            chunk.pulse_input[j].tolist(),
            [ts[i] for i in h.tolist()],
            chunk.pulse_count[h, j].tolist(),
            strict=True,
        )
    )
    h, j = np.nonzero(chunk.temp_ok)
    rows[TEMPERATURES] = list(
        zip(
            chunk.temp_module[j].tolist(),
            [ts[i] for i in h.tolist()],
            chunk.supply_centi_c[h, j].tolist(),
            chunk.return_centi_c[h, j].tolist(),
            strict=True,
        )
    )
    h, j = np.nonzero(chunk.status_ok)
    rows[STATUS] = list(
        zip(
            chunk.status_module[j].tolist(),
            [ts[i] for i in h.tolist()],
            chunk.battery_mv[h, j].tolist(),
            chunk.rssi_dbm[h, j].tolist(),
            chunk.hops[h, j].tolist(),
            chunk.parent[h, j].tolist(),
            chunk.tamper[h, j].tolist(),
            chunk.error_bits[h, j].tolist(),
            strict=True,
        )
    )
    rows[EVENTS] = [(m, datetime.fromtimestamp(t, tz=UTC), code) for m, t, code in chunk.events]
    return rows


async def write_chunks(conn: asyncpg.Connection, chunks: list[Chunk]) -> int:
    """Load the chunks' readings idempotently in one transaction; return rows inserted."""
    per_chunk = [_rows(c) for c in chunks]
    return await insert_readings(
        conn, {table: [r for rows in per_chunk for r in rows[table]] for table in READING_COLUMNS}
    )


async def copy_chunks(conn: asyncpg.Connection, chunks: list[Chunk]) -> int:
    """Load the chunks' readings with a plain COPY into each table, in one transaction;
    return the rows written. Only for tables that hold none of these rows yet (a benchmark
    priming an empty database): a row already there is a unique-key error, not skipped."""
    per_chunk = [_rows(c) for c in chunks]
    written = 0
    async with conn.transaction():
        for table, columns in READING_COLUMNS.items():
            records = [r for rows in per_chunk for r in rows[table]]
            if records:
                await conn.copy_records_to_table(table, records=records, columns=columns)
                written += len(records)
    return written
