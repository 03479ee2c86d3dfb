"""The audit log: every command and admin change, who did it and to what."""

from __future__ import annotations

from typing import Any

import asyncpg

from balans_api import principal_cache


async def record(
    conn: asyncpg.Pool | asyncpg.Connection,
    actor: str,
    action: str,
    target: str,
    **detail: Any,
) -> None:
    """Log the change; users' principals kept by this process are forgotten with it (a
    role, account or deactivation takes effect at once here, within
    ``BALANS_API_AUTH_CACHE_TTL_S`` in the other workers)."""
    principal_cache.forget_all()
    await conn.execute(
        "insert into audit_log (actor, action, target, detail) values ($1, $2, $3, $4)",
        actor,
        action,
        target,
        detail,
    )
