"""Monthly partitions for every partitioned table, over the range readings may have.

The tables have no default partition (migration ``0002_core_partitions``): a row outside
every monthly partition fails to insert rather than landing where it would block creating
that month's partition later. So the partitions must cover every time a reading may legally
carry: from the month ``BALANS_READINGS_HORIZON_DAYS`` back (ingest and the persister refuse
older readings) to ``months_ahead`` months ahead. ``balans db migrate``, ``balans run`` and the
persister (at start and daily) ensure them; ``balans db partitions`` does it by hand (e.g.
from cron). Creating a partition never scans existing rows, so no stored row can block it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg

from balans_core.settings import CommonSettings

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


async def ensure_partitions(
    database_url: str, months_ahead: int = 12, horizon_days: int | None = None
) -> dict[str, int]:
    """Create missing monthly partitions from the month ``horizon_days`` back (default:
    ``BALANS_READINGS_HORIZON_DAYS``) to ``months_ahead`` months after this one; return how
    many each table got."""
    if horizon_days is None:
        horizon_days = CommonSettings().readings_horizon_days
    today = datetime.now(UTC).date()
    conn = await asyncpg.connect(database_url)
    try:
        tables = [r["relname"] for r in await conn.fetch(PARTITIONED_TABLES)]
        return {
            table: await conn.fetchval(
                "select balans_ensure_partitions($1, $2, $3)",
                table,
                month_start(today - timedelta(days=horizon_days)),
                month_start(today, months_ahead + 1),
            )
            for table in tables
        }
    finally:
        await conn.close()
