"""The fast path: readings straight into PostgreSQL, bypassing ingest.

For detector benchmarks and quick backfills. Rows land in the same tables, with the same
meaning, as the persister's (cumulative registers at the end of each hour, hourly means),
and the load is idempotent the same way: COPY into a temporary table, then
``INSERT ... ON CONFLICT DO NOTHING`` on each table's unique key. Readings lost in the
mesh are left out here too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import numpy as np

from balans_sim.engine import Chunk

_COLUMNS = {
    "pulse_readings": ("module_serial", "input", "ts", "count"),
    "temperature_readings": ("module_serial", "ts", "supply_centi_c", "return_centi_c"),
    "module_status": (
        "module_serial",
        "ts",
        "battery_mv",
        "rssi_dbm",
        "hops",
        "parent_serial",
        "tamper",
        "error_bits",
    ),
    "module_events": ("module_serial", "ts", "code"),
}


def _ts(chunk: Chunk) -> list[datetime]:
    return [datetime.fromtimestamp(int(t), tz=UTC) for t in chunk.ts_unix]


def _rows(chunk: Chunk) -> dict[str, list[tuple[object, ...]]]:
    ts = _ts(chunk)
    h, j = np.nonzero(chunk.pulse_ok)
    rows: dict[str, list[tuple[object, ...]]] = {}
    rows["pulse_readings"] = list(
        zip(
            chunk.pulse_module[j].tolist(),
            chunk.pulse_input[j].tolist(),
            [ts[i] for i in h.tolist()],
            chunk.pulse_count[h, j].tolist(),
            strict=True,
        )
    )
    h, j = np.nonzero(chunk.temp_ok)
    rows["temperature_readings"] = list(
        zip(
            chunk.temp_module[j].tolist(),
            [ts[i] for i in h.tolist()],
            chunk.supply_centi_c[h, j].tolist(),
            chunk.return_centi_c[h, j].tolist(),
            strict=True,
        )
    )
    h, j = np.nonzero(chunk.status_ok)
    rows["module_status"] = list(
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
    rows["module_events"] = [
        (m, datetime.fromtimestamp(t, tz=UTC), code) for m, t, code in chunk.events
    ]
    return rows


async def write_chunks(conn: asyncpg.Connection, chunks: list[Chunk]) -> int:
    """Load the chunks' readings idempotently in one transaction; return rows inserted."""
    inserted = 0
    per_chunk = [_rows(c) for c in chunks]
    async with conn.transaction():
        for table, columns in _COLUMNS.items():
            records = [r for rows in per_chunk for r in rows[table]]
            if not records:
                continue
            stage = f"sim_stage_{table}"
            await conn.execute(
                f"create temp table if not exists {stage} "
                f"(like {table} including defaults) on commit drop"
            )
            await conn.copy_records_to_table(stage, records=records, columns=columns)
            status = await conn.execute(
                f"insert into {table} ({', '.join(columns)}) "
                f"select {', '.join(columns)} from {stage} on conflict do nothing"
            )
            inserted += int(status.split()[-1])
            await conn.execute(f"truncate {stage}")
    return inserted
