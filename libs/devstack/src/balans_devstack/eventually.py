"""Wait for an asynchronous effect in a test: poll a condition until it holds or a deadline.

Tests must never assert right after starting something asynchronous (a service, a publish,
a subscription callback): they wait for the effect with this, which fails naming what did
not happen instead of asserting on a half-finished state.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    what: str,
    check: Callable[[], bool | Awaitable[bool]],
    timeout_s: float = 60.0,
    interval_s: float = 0.05,
) -> None:
    """Return once ``check()`` is true; raise AssertionError naming ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout_s:.0f} s: {what}")
        await asyncio.sleep(interval_s)
