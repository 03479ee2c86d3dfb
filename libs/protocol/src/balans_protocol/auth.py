"""Frame authentication: HMAC-SHA256 tags, the handshake nonces and the session key.

A concentrator shares one 32-byte key with the server. HELLO frames are tagged with that
device key; every later frame with a *session key* derived from both sides' fresh
nonces, so frames recorded in one session do not verify in any other (docs/protocol.md,
"Handshake"). HMAC comes from the standard library (OpenSSL underneath): its one-shot
``hmac.digest`` is the fastest way to tag many small frames.
"""

from __future__ import annotations

import hashlib
import hmac
import os

TAG_BYTES = 16  # HMAC-SHA256 truncated to 128 bits (as RFC 4868 does for IPsec)
NONCE_BYTES = 16
KEY_BYTES = 32
SESSION_LABEL = b"balans/session/v1"
# Tags a NACK the server sends before it knows or trusts the peer's key (unknown
# concentrator, bad HELLO tag). Anyone can forge such a NACK, so a concentrator treats it
# as advice to back off and reconnect, never as a verdict on a batch.
UNAUTHENTICATED_KEY = bytes(KEY_BYTES)


def tag(key: bytes, data: bytes | memoryview) -> bytes:
    """The authentication tag of ``data`` under ``key``."""
    return hmac.digest(key, data, hashlib.sha256)[:TAG_BYTES]


def tag_matches(key: bytes, data: bytes | memoryview, received: bytes | memoryview) -> bool:
    """Constant-time check of a received tag."""
    return hmac.compare_digest(tag(key, data), bytes(received))


def session_key(device_key: bytes, client_nonce: bytes, server_nonce: bytes) -> bytes:
    """The key that tags every frame after the HELLO exchange of one connection."""
    return hmac.digest(device_key, SESSION_LABEL + client_nonce + server_nonce, hashlib.sha256)


def new_nonce() -> bytes:
    """A fresh random handshake nonce."""
    return os.urandom(NONCE_BYTES)
