"""The audit log: every command and admin change, who did it and to what."""

from __future__ import annotations

from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Pool | asyncpg.Connection,
    actor: str,
    action: str,
    target: str,
    **detail: Any,
) -> None:
    await conn.execute(
        "insert into audit_log (actor, action, target, detail) values ($1, $2, $3, $4)",
        actor,
        action,
        target,
        detail,
    )
