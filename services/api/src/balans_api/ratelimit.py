"""Rate limit of login attempts per client address (moving window, in process memory).

The address is the peer's, or what ``X-Forwarded-For`` says when the peer is one of
``BALANS_API_TRUSTED_PROXIES`` (applied by the app before this runs). Guessing one user's
password from many addresses is slowed by the per-user backoff (``login_backoff``)."""

from __future__ import annotations

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter


class LoginLimiter:
    """Counts login attempts per client address."""

    def __init__(self, rate: str) -> None:
        self._item = parse(rate)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def allow(self, client: str) -> bool:
        return self._limiter.hit(self._item, "client", client)
