"""Concentrator keys: read from the concentrators table, opened with the KeyVault.

After a key rotation (the api's provisioning) a concentrator has two keys until the
overlap ends: the new one and the one it may still be using in the field. A HELLO is
accepted under either; past ``previous_until`` only the new key works.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from balans_db.queries import world
from balans_db.secrets import KeyVault
from balans_ingest.metrics import PREVIOUS_KEY_HELLOS
from balans_protocol.errors import ProtocolError
from balans_protocol.frames import verify_tag


@dataclass(frozen=True, slots=True)
class ConcentratorKey:
    serial: int
    building_id: int
    device_key: bytes
    previous_key: bytes | None = None  # valid until previous_until (a rotation's overlap)
    previous_until: datetime | None = None

    def valid_keys(self) -> list[bytes]:
        """The keys a HELLO may be tagged with now, the current one first."""
        overlap = self.previous_until is not None and datetime.now(UTC) < self.previous_until
        if overlap and self.previous_key is not None:
            return [self.device_key, self.previous_key]
        return [self.device_key]


class KeyStore:
    """Looks concentrators up by serial, caching each answer for ``cache_s`` seconds
    (a HELLO that verifies under none of the cached keys looks again at once, so a
    rotated key works from its first HELLO)."""

    def __init__(self, pool: asyncpg.Pool, vault: KeyVault, cache_s: float = 300.0) -> None:
        self.pool = pool  # also read by the upload gate (registered modules)
        self._vault = vault
        self._cache_s = cache_s
        self._cache: dict[int, tuple[float, ConcentratorKey]] = {}

    async def get(self, serial: int, *, fresh: bool = False) -> ConcentratorKey | None:
        """The key of a registered concentrator, or None."""
        now = time.monotonic()
        hit = self._cache.get(serial)
        if not fresh and hit is not None and now - hit[0] < self._cache_s:
            return hit[1]
        row = await world.concentrator(self.pool, serial)
        if row is None:
            self._cache.pop(serial, None)
            return None
        context = str(serial).encode()
        previous = row["previous_key_ciphertext"]
        key = ConcentratorKey(
            serial,
            row["building_id"],
            self._vault.open(row["key_ciphertext"], context=context),
            self._vault.open(previous, context=context) if previous is not None else None,
            row["previous_key_until"],
        )
        self._cache[serial] = (now, key)
        return key

    async def for_hello(self, serial: int, hello: bytes) -> ConcentratorKey | None:
        """The concentrator with ``device_key`` set to whichever of its valid keys tags
        ``hello`` (its current key when none does: decoding then fails as BAD_TAG)."""
        for fresh in (False, True):
            key = await self.get(serial, fresh=fresh)
            if key is None:
                return None
            for candidate in key.valid_keys():
                try:
                    verify_tag(hello, candidate)
                except ProtocolError:
                    continue
                if candidate != key.device_key:
                    PREVIOUS_KEY_HELLOS.inc()
                    return dataclasses.replace(key, device_key=candidate)
                return key
        return key
