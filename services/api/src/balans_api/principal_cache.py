"""Users' principals kept for a moment, so a request does not read the user's row again.

A user's role, account and flat change rarely, and a page asks several times a second;
the row costs a query per request (a third of a month profile's statements). Each api
process keeps a user's principal for ``BALANS_API_AUTH_CACHE_TTL_S`` (1 s). Every change
the api audits (a deactivation, a role or account change, an account's end, a key's
revocation...) forgets all of them in the process that made it at once; the other
workers see it within the TTL. API keys are not kept: their revocation is immediate
everywhere."""

from __future__ import annotations

import time

from balans_api.principal import Principal

MAX_ENTRIES = 10_000

_generation = 0  # bumped by forget_all(): entries of older generations are stale


def forget_all() -> None:
    """Drop every process's kept principals (called for each audited change)."""
    global _generation
    _generation += 1


class PrincipalCache:
    """Principals by user id for ``ttl_s`` seconds (0: not kept)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[int, tuple[float, int, Principal]] = {}

    def get(self, user_id: int) -> Principal | None:
        hit = self._entries.get(user_id)
        if hit is None:
            return None
        expires, generation, principal = hit
        if generation != _generation or expires <= time.monotonic():
            del self._entries[user_id]
            return None
        return principal

    def put(self, user_id: int, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[user_id] = (time.monotonic() + self.ttl_s, _generation, principal)
