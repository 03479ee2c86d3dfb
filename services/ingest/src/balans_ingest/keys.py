"""Concentrator keys: read from the concentrators table, opened with the KeyVault."""

from __future__ import annotations

import time
from dataclasses import dataclass

import asyncpg

from balans_db.queries import world
from balans_db.secrets import KeyVault


@dataclass(frozen=True, slots=True)
class ConcentratorKey:
    serial: int
    building_id: int
    device_key: bytes


class KeyStore:
    """Looks concentrators up by serial, caching each answer for ``cache_s`` seconds
    (so a rotated key takes effect within that time)."""

    def __init__(self, pool: asyncpg.Pool, vault: KeyVault, cache_s: float = 300.0) -> None:
        self.pool = pool  # also read by the upload gate (registered modules)
        self._vault = vault
        self._cache_s = cache_s
        self._cache: dict[int, tuple[float, ConcentratorKey]] = {}

    async def get(self, serial: int) -> ConcentratorKey | None:
        """The key of a registered concentrator, or None."""
        now = time.monotonic()
        hit = self._cache.get(serial)
        if hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        row = await world.concentrator(self.pool, serial)
        if row is None:
            self._cache.pop(serial, None)
            return None
        key = ConcentratorKey(
            serial,
            row["building_id"],
            self._vault.open(row["key_ciphertext"], context=str(serial).encode()),
        )
        self._cache[serial] = (now, key)
        return key
