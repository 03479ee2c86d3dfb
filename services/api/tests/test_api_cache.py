"""The building-wide cache: nobody waits for a renewal, a failing renewal keeps the old
value (and is counted), entries made together expire apart."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from balans_api.cache import TtlCache

pytestmark = pytest.mark.asyncio(loop_scope="session")

TTL = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Source:
    """Values 1, 2, 3...; each computation can be held until released, or made to fail."""

    def __init__(self) -> None:
        self.made = 0
        self.release = asyncio.Event()
        self.release.set()
        self.fail = False

    async def __call__(self) -> int:
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the database is away")
        self.made += 1
        return self.made


def _failures() -> float:
    return REGISTRY.get_sample_value("balans_api_cache_renewal_failures_total") or 0.0


async def _until(check: object, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def test_a_stale_value_answers_while_it_is_renewed() -> None:
    clock, source = Clock(), Source()
    cache = TtlCache(TTL, clock)
    assert await cache.get("k", source) == 1
    clock.now += TTL * 0.5
    assert await cache.get("k", source) == 1
    assert source.made == 1  # fresh: not computed again
    clock.now += TTL * 0.5  # stale now
    source.release.clear()
    # answered at once, the renewal held; one renewal, not one per caller
    assert await asyncio.wait_for(cache.get("k", source), 5) == 1
    assert await asyncio.wait_for(cache.get("k", source), 5) == 1
    source.release.set()
    await _until(lambda: source.made == 2)
    await _until(lambda: not cache._pending)
    assert await cache.get("k", source) == 2


async def test_a_failing_renewal_keeps_the_old_value_until_twice_the_ttl() -> None:
    clock, source = Clock(), Source()
    cache = TtlCache(TTL, clock)
    assert await cache.get("k", source) == 1
    before = _failures()
    source.fail = True
    clock.now += TTL
    assert await cache.get("k", source) == 1
    await _until(lambda: _failures() == before + 1)
    assert await cache.get("k", source) == 1  # renewed again, fails again, counted
    await _until(lambda: _failures() == before + 2)
    clock.now += TTL  # twice the TTL: no longer answered, the caller waits for a value
    with pytest.raises(RuntimeError, match="away"):
        await cache.get("k", source)
    source.fail = False
    assert await cache.get("k", source) == 2


async def test_entries_made_together_expire_apart() -> None:
    clock, source = Clock(), Source()
    cache = TtlCache(TTL, clock)
    for key in range(50):
        await cache.get(key, source)
    expiries = [entry[0] - clock.now for entry in cache._entries.values()]
    assert all(0.8 * TTL <= e <= TTL for e in expiries)
    assert max(expiries) - min(expiries) > 0.1 * TTL


async def test_closing_cancels_a_renewal_that_is_still_running() -> None:
    clock, source = Clock(), Source()
    cache = TtlCache(TTL, clock)
    assert await cache.get("k", source) == 1
    before = _failures()
    clock.now += TTL
    source.release.clear()  # the renewal waits on the database
    assert await cache.get("k", source) == 1
    await _until(lambda: bool(cache._renewals))
    await asyncio.wait_for(cache.close(), 5)
    assert not cache._renewals
    assert not cache._pending
    assert source.made == 1
    assert _failures() == before  # a cancelled renewal is not a failed one
