"""Rate limit of login attempts per client address: a moving window kept in PostgreSQL
(``login_attempts``), so every api worker and process counts the same attempts.

The address is the peer's, or what ``X-Forwarded-For`` says when the peer is one of
``BALANS_API_TRUSTED_PROXIES`` (applied by the app before this runs). Guessing one user's
password from many addresses is slowed by the per-user backoff (``login_backoff``)."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from limits import parse

_COUNT = """
select count(*) from login_attempts where client = $1 and at > now() - $2::interval
"""


class LoginLimiter:
    """Counts login attempts per client address (``rate`` in the limits syntax,
    e.g. ``10/minute``)."""

    def __init__(self, rate: str) -> None:
        item = parse(rate)
        self.amount = item.amount
        self.window = timedelta(seconds=item.get_expiry())

    async def allow(self, pool: asyncpg.Pool, client: str) -> bool:
        """Record an attempt of ``client``; False when the window is full (not recorded)."""
        async with pool.acquire() as conn, conn.transaction():
            # one client's attempts are counted and recorded under a lock of its own, so
            # two workers cannot both let the last allowed attempt through
            await conn.execute(
                "select pg_advisory_xact_lock(hashtextextended('login:' || $1, 0))", client
            )
            await conn.execute(
                "delete from login_attempts where at <= now() - $1::interval", self.window
            )
            used = await conn.fetchval(_COUNT, client, self.window)
            if used >= self.amount:
                return False
            await conn.execute("insert into login_attempts (client) values ($1)", client)
            return True
