"""``balans db seed-demo``: the demo city (reference building plus smaller ones)."""

from __future__ import annotations

import asyncpg

from balans_db.secrets import KeyVault
from balans_db.topology import BuildingSpec, demo_city, write_building


async def seed(database_url: str, vault: KeyVault, city: list[BuildingSpec] | None = None) -> int:
    """Write the buildings that are not there yet; return how many were added."""
    conn = await asyncpg.connect(database_url)
    try:
        added = 0
        for spec in city if city is not None else demo_city():
            if await write_building(conn, spec, vault) is not None:
                added += 1
        return added
    finally:
        await conn.close()
