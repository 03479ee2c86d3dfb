"""The simulated city in the database: written through ``balans_db.topology``, keys read back."""

from __future__ import annotations

import hashlib

import asyncpg

from balans_db.queries import world
from balans_db.secrets import KeyVault
from balans_db.topology import BuildingSpec, write_building


def device_key(seed: int, concentrator_serial: int) -> bytes:
    """The simulated concentrator's key, reproducible from the seed (it is a simulation)."""
    return hashlib.sha256(f"balans-sim:{seed}:{concentrator_serial}".encode()).digest()


async def write_city(
    conn: asyncpg.Connection, city: list[BuildingSpec], vault: KeyVault, seed: int
) -> int:
    """Write the buildings not yet in the database; return how many were added."""
    added = 0
    for spec in city:
        key = device_key(seed, spec.concentrator_serial)
        if await write_building(conn, spec, vault, device_key=key) is not None:
            added += 1
    return added


async def concentrator_keys(
    conn: asyncpg.Connection, city: list[BuildingSpec], vault: KeyVault
) -> dict[int, bytes]:
    """Device keys of the city's concentrators as stored (whoever wrote the buildings)."""
    rows = await world.concentrator_ciphertexts(conn, [spec.concentrator_serial for spec in city])
    return {
        int(r["serial"]): vault.open(r["key_ciphertext"], context=str(r["serial"]).encode())
        for r in rows
    }
