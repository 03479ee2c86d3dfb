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


def read_token(secret: str, token: str) -> tuple[int, float] | None:
    """(user id, expiry as a Unix time) of a valid, unexpired token, else None."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["exp"]})
        return int(claims["sub"]), float(claims["exp"])
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return None


class VerifiedTokens:
    """Tokens whose signature this process has checked, with their user and expiry.

    A page's requests all carry the same token for its 15 minutes, and decoding and
    checking it again (PyJWT, HS256) was about a tenth of a light request's CPU. A kept
    token still answers None from its expiry on, as PyJWT would; a token that fails is not
    kept. Whether the user may still sign in is not the token's business: the principal
    (``deps``) is read from the user's row."""

    def __init__(self, secret: str, max_entries: int = 10_000) -> None:
        self.secret = secret
        self.max_entries = max_entries
        self._kept: dict[str, tuple[int, float]] = {}

    def user_id(self, token: str) -> int | None:
        kept = self._kept.get(token)
        if kept is None:
            kept = read_token(self.secret, token)
            if kept is None:
                return None
            if len(self._kept) >= self.max_entries:
                self._kept.clear()
            self._kept[token] = kept
        user_id, expires = kept
        if expires <= time.time():
            del self._kept[token]
            return None
        return user_id


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
