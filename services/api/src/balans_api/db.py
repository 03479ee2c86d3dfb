"""The asyncpg pool the api uses: JSON columns decode to Python objects, and a connection
goes back to the pool without a reset round trip."""

from __future__ import annotations

import json

import asyncpg


async def _init(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            encoder=lambda v: json.dumps(v, default=str),
            decoder=json.loads,
            schema="pg_catalog",
        )


class _Connection(asyncpg.Connection):
    """asyncpg resets a released connection with ``RESET ALL; UNLISTEN *; CLOSE ALL;
    pg_advisory_unlock_all()``: one more round trip after every ``pool.fetch*``, half of a
    read's statements. The api leaves none of that behind (no ``SET``, ``LISTEN``,
    cursors held past their transaction or session advisory locks: its locks are
    ``pg_advisory_xact_lock``), so the reset is left out; asyncpg still rolls back a
    transaction left open and drops listeners on release."""

    def get_reset_query(self) -> str:
        return ""


async def open_pool(database_url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        database_url,
        min_size=1,
        max_size=size,
        init=_init,
        command_timeout=30,
        connection_class=_Connection,
    )
    assert pool is not None
    return pool
