"""The billing migration branch creates billing's declared tables and takes them away again."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from balans_db import migrate
from balans_db.tables import OWNERS, metadata

BILLING = [name for name, owner in OWNERS.items() if owner == "billing"]


async def _columns(url: str) -> dict[str, set[str]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            """select table_name, column_name from information_schema.columns
               where table_schema = 'public' and table_name = any($1::text[])""",
            BILLING,
        )
    finally:
        await conn.close()
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r["table_name"], set()).add(r["column_name"])
    return found


@pytest.mark.asyncio
async def test_billing_branch_upgrades_and_downgrades(empty_database_url: str) -> None:
    """Every billing table exists with the declared columns; downgrade drops them all."""
    await asyncio.to_thread(migrate.upgrade, empty_database_url)
    found = await _columns(empty_database_url)
    assert found == {name: {c.name for c in metadata.tables[name].columns} for name in BILLING}
    await asyncio.to_thread(migrate.downgrade, empty_database_url, "billing@0001_core")
    assert await _columns(empty_database_url) == {}
