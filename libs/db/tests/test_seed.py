"""The demo seed writes the reference building of docs/domain.md, once."""

from __future__ import annotations

import asyncpg
import pytest
from cryptography.exceptions import InvalidTag

from balans_db.secrets import KeyVault
from balans_db.seed import seed
from balans_db.topology import reference_building


@pytest.mark.asyncio
async def test_reference_building_counts_and_idempotence(database_url: str) -> None:
    """100 flats, 3 entrances, 10 floors, 34 risers; seeding again adds nothing."""
    vault = KeyVault()
    first = await seed(database_url, vault)
    second = await seed(database_url, vault)
    assert first >= 2
    assert second == 0
    conn = await asyncpg.connect(database_url)
    try:
        code = reference_building().code
        bid = await conn.fetchval("select id from buildings where code = $1", code)
        flats = await conn.fetchval("select count(*) from flats where building_id = $1", bid)
        floors = await conn.fetchval(
            "select count(distinct floor) from flats where building_id = $1", bid
        )
        entrances = await conn.fetchval(
            "select count(*) from entrances where building_id = $1", bid
        )
        risers = await conn.fetchval("select count(*) from risers where building_id = $1", bid)
        buildings = await conn.fetchval("select count(*) from buildings where code = $1", code)
        every_riser_ten_flats = await conn.fetchval(
            """select bool_and(n = 10) from (
                 select count(distinct r.flat_id) n from radiators r
                 join risers s on s.id = r.riser_id where s.building_id = $1 group by s.id) x""",
            bid,
        )
    finally:
        await conn.close()
    assert (flats, entrances, floors, risers, buildings) == (100, 3, 10, 34, 1)
    assert every_riser_ten_flats


@pytest.mark.asyncio
async def test_device_keys_are_sealed(database_url: str) -> None:
    """Concentrator keys are stored encrypted and open only with the master key."""
    await seed(database_url, KeyVault())
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("select serial, key_ciphertext from concentrators limit 1")
    finally:
        await conn.close()
    key = KeyVault().open(row["key_ciphertext"], context=str(row["serial"]).encode())
    assert len(key) == 32
    assert key not in row["key_ciphertext"]
    with pytest.raises(InvalidTag):
        KeyVault(b"\x01" * 32).open(row["key_ciphertext"], context=str(row["serial"]).encode())
