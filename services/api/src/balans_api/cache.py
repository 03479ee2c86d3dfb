"""A small time-to-live cache for building-wide aggregates that every flat's page needs.

Building averages change once an hour at most; recomputing them for each of a
building's hundred consumers would dominate the portal's load.

An entry is renewed in the background once it is stale, and the old value answers until
the new one is there: nobody waits for a renewal. Entries live between 80 and 100 % of
the TTL, drawn at random: the entries a worker makes at its start (an overview for each
building) would otherwise all expire in the same second and be recomputed together, a
burst of PostgreSQL work that every request then waited behind (the benchmark's p99 at
400 requests/s fell in that second). An entry older than twice the TTL (renewals
failing) is recomputed before it is answered."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import structlog

from balans_api.metrics import CACHE_RENEWAL_FAILURES

log = structlog.get_logger("api")

MAX_ENTRIES = 10_000
SPREAD = 0.2  # an entry lives (1 - SPREAD .. 1) x the TTL


class TtlCache:
    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        # key -> (stale from, made at, value)
        self._entries: dict[Hashable, tuple[float, float, Any]] = {}
        self._pending: dict[Hashable, asyncio.Future[Any]] = {}
        self._renewals: set[asyncio.Task[None]] = set()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The cached value, or compute it once even when many ask at the same time; a
        stale one is answered while it is renewed in the background."""
        now = self.clock()
        hit = self._entries.get(key)
        if hit is not None and now < hit[1] + 2 * self.ttl_s:
            stale_from, _, value = hit
            if now >= stale_from and key not in self._pending:
                # marked pending at once: the callers before the task starts renew nothing
                task = asyncio.create_task(self._renew(key, compute, self._begin(key)))
                self._renewals.add(task)
                task.add_done_callback(self._renewals.discard)
            return value
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        return await self._compute(key, compute)

    async def close(self) -> None:
        """Cancel the renewals still running (the app is stopping and its pool closes
        next) and wait for them to end."""
        for task in list(self._renewals):
            task.cancel()
        await asyncio.gather(*self._renewals, return_exceptions=True)
        for future in self._pending.values():  # of a renewal cancelled before it began
            future.cancel()
        self._pending.clear()

    async def _renew(
        self, key: Hashable, compute: Callable[[], Awaitable[Any]], future: asyncio.Future[Any]
    ) -> None:
        try:
            await self._compute(key, compute, future)
        except Exception:
            CACHE_RENEWAL_FAILURES.inc()
            log.exception("renewing a cached value failed; the old one answers", key=str(key))

    def _begin(self, key: Hashable) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        return future

    async def _compute(
        self,
        key: Hashable,
        compute: Callable[[], Awaitable[Any]],
        future: asyncio.Future[Any] | None = None,
    ) -> Any:
        future = future or self._begin(key)
        try:
            value = await compute()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        if self.ttl_s > 0:
            made = self.clock()
            life = self.ttl_s * (1 - SPREAD * random.random())
            self._entries[key] = (made + life, made, value)
        return value
