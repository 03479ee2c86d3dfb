"""Concentrator key rotation with an overlap window.

The new key is generated here (32 random bytes), stored sealed and returned once. The
key it replaces stays valid until the overlap ends, so a concentrator in the field keeps
uploading while it is re-keyed; afterwards ingest answers the old key with a NACK. A
second rotation inside an overlap replaces the older key at once (two keys at most).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from balans_db.secrets import KeyVault


@dataclass(frozen=True)
class RotatedKey:
    serial: int
    key: bytes
    previous_key_until: datetime


async def rotate_key(
    conn: asyncpg.Connection, serial: int, vault: KeyVault, overlap: timedelta
) -> RotatedKey | None:
    """Give concentrator ``serial`` a new key; None if there is no such concentrator."""
    key = os.urandom(32)
    until = await conn.fetchval(
        """update concentrators set previous_key_ciphertext = key_ciphertext,
                  previous_key_until = now() + $3::interval, key_ciphertext = $2
           where serial = $1 returning previous_key_until""",
        serial,
        vault.seal(key, context=str(serial).encode()),
        overlap,
    )
    return None if until is None else RotatedKey(serial, key, until)
