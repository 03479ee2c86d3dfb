"""Device keys at rest: AES-256-GCM under a master key, never stored in clear.

The master key comes from ``BALANS_MASTER_KEY`` (64 hex characters). Development runs
without one use a fixed development key and say so in the log.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEV_MASTER_KEY = hashlib.sha256(b"balans development master key - not for production").digest()
_NONCE_BYTES = 12


class KeyVault:
    """Encrypts and decrypts per-device secrets (concentrator keys, meter AES keys)."""

    def __init__(self, master_key: bytes = DEV_MASTER_KEY) -> None:
        if len(master_key) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(master_key)

    @classmethod
    def from_hex(cls, master_key_hex: str | None) -> KeyVault:
        return cls(bytes.fromhex(master_key_hex) if master_key_hex else DEV_MASTER_KEY)

    def seal(self, secret: bytes, *, context: bytes) -> bytes:
        """Encrypt ``secret``; ``context`` (e.g. the device serial) is bound to it."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret, context)

    def open(self, sealed: bytes, *, context: bytes) -> bytes:
        """Decrypt what :meth:`seal` produced; raises ``InvalidTag`` if tampered with."""
        return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)
