"""Monthly partitions ahead of time for every partitioned table.

Migrations create partitions up to 2027-12; rows beyond land in each table's default
partition, which then blocks creating that month's partition. ``balans db migrate`` and
``balans db partitions`` (run it monthly, e.g. from cron) keep a year ahead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg

PARTITIONED_TABLES = """
select c.relname from pg_partitioned_table p
join pg_class c on c.oid = p.partrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = current_schema()
order by c.relname
"""


def month_start(day: date, months_later: int = 0) -> date:
    index = day.year * 12 + day.month - 1 + months_later
    return date(index // 12, index % 12 + 1, 1)


async def ensure_partitions(database_url: str, months_ahead: int = 12) -> dict[str, int]:
    """Create missing monthly partitions from this month to ``months_ahead`` months later;
    return how many each table got."""
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(database_url)
    try:
        tables = [r["relname"] for r in await conn.fetch(PARTITIONED_TABLES)]
        return {
            table: await conn.fetchval(
                "select balans_ensure_partitions($1, $2, $3)",
                table,
                month_start(today),
                month_start(today, months_ahead + 1),
            )
            for table in tables
        }
    finally:
        await conn.close()
