"""Rate limit of login attempts (moving window, in process memory)."""

from __future__ import annotations

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class LoginLimiter:
    """Counts attempts per client address and per username; either may run out."""

    def __init__(self, rate: str) -> None:
        self._item = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, client: str, username: str) -> bool:
        by_client = self._limiter.hit(self._item, "client", client)
        by_user = self._limiter.hit(self._item, "user", username.lower())
        return by_client and by_user
