"""Per-user login backoff: after ``login_free_failures`` failed logins each further one
doubles the wait before the next attempt (from ``login_delay_s`` up to
``login_max_delay_s``).

A wait, not a lock: whoever fails a user's password can make the real user wait at most
the longest delay, never lock them out; a good login resets it and an admin can clear it.
The state lives in the ``users`` row, so every api process applies the same delay."""

from __future__ import annotations

import asyncpg

from balans_api.settings import ApiSettings

_FAILED = """
update users set
  failed_logins = failed_logins + 1,
  login_delay_until = case when failed_logins + 1 > $2 then now() + make_interval(
    secs => least($4::float8, $3::float8 * power(2, least(failed_logins - $2::int, 40)))) end
where id = $1
"""

_CLEARED = """
update users set failed_logins = 0, login_delay_until = null
where id = $1 and (failed_logins > 0 or login_delay_until is not null)
"""


async def record_failure(pool: asyncpg.Pool, user_id: int, settings: ApiSettings) -> None:
    await pool.execute(
        _FAILED,
        user_id,
        settings.login_free_failures,
        settings.login_delay_s,
        settings.login_max_delay_s,
    )


async def clear(conn: asyncpg.Pool | asyncpg.Connection, user_id: int) -> bool:
    """Forget a user's failures (a good login, an admin's unlock); True when there were."""
    return bool(await conn.execute(_CLEARED, user_id) != "UPDATE 0")
