"""Password hashes (argon2), access tokens (JWT, HS256) and integrator API keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from functools import cache

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
API_KEY_PREFIX = "bk_"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _unknown_user_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def spend_a_verification(password: str) -> None:
    """Verify against a hash nobody knows: a login for an unknown user then takes as long as
    one with a wrong password, so the time does not tell which usernames exist."""
    verify_password(_unknown_user_hash(), password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when the password matches; a malformed hash counts as a mismatch."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def issue_token(secret: str, user_id: int, role: str, ttl_s: int) -> str:
    now = int(time.time())
    claims = {"sub": str(user_id), "role": role, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


def read_token(secret: str, token: str) -> int | None:
    """The user id of a valid, unexpired token, else None."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
        return int(claims["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return None


@dataclass(frozen=True)
class NewApiKey:
    """A freshly made key: ``token`` is shown once, only ``prefix`` and the digest are kept."""

    token: str
    prefix: str
    secret_sha256: bytes


def new_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewApiKey(f"{API_KEY_PREFIX}{prefix}_{secret}", prefix, _digest(secret))


def split_api_key(token: str) -> tuple[str, bytes] | None:
    """(prefix, digest of the secret) of a well-formed key, else None."""
    if not token.startswith(API_KEY_PREFIX):
        return None
    prefix, _, secret = token[len(API_KEY_PREFIX) :].partition("_")
    if not prefix or not secret:
        return None
    return prefix, _digest(secret)


def digests_match(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
