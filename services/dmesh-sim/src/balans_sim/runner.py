"""Drive a city simulation through the concentrators: fast-forward or in real time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from balans_sim.concentrator import SimConcentrator
from balans_sim.engine import Chunk, CitySim
from balans_sim.metrics import HOURS, PENDING, READINGS


def count(chunks: list[Chunk]) -> None:
    """Account generated chunks in the metrics."""
    HOURS.inc(sum(len(c.hours) for c in chunks))
    READINGS.inc(sum(c.reading_count() for c in chunks))


async def run_concentrators(
    sim: CitySim,
    concentrators: list[SimConcentrator],
    hours: int,
    *,
    hours_per_second: float | None,
    stop: asyncio.Event,
    step_hours: int = 24,
    on_chunk: Callable[[list[Chunk]], None] | None = None,
) -> int:
    """Simulate ``hours`` and queue every hour as a batch; ``hours_per_second=None`` runs as
    fast as the pipeline accepts. Returns the hours simulated (fewer if ``stop`` was set)."""
    done = 0
    began = time.monotonic()
    while done < hours and not stop.is_set():
        step = min(step_hours if hours_per_second is None else 1, hours - done)
        chunks = sim.advance(step)
        for concentrator, chunk in zip(concentrators, chunks, strict=True):
            await concentrator.send(chunk)
        count(chunks)
        PENDING.set(sum(c.client.pending for c in concentrators))
        done += step
        if on_chunk is not None:
            on_chunk(chunks)
        if hours_per_second is not None:
            wait = began + done / hours_per_second - time.monotonic()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
    return done


async def flush_all(concentrators: list[SimConcentrator], timeout_s: float) -> None:
    """End any outage still going on, then wait until ingest has ACKed every queued batch."""
    async with asyncio.timeout(timeout_s):
        await asyncio.gather(*(c.restore_uplink() for c in concentrators))
        await asyncio.gather(*(c.client.flush() for c in concentrators))


@contextlib.asynccontextmanager
async def connected_concentrators(
    sim: CitySim, keys: dict[int, bytes], host: str, port: int, boot: int
) -> AsyncIterator[list[SimConcentrator]]:
    """One started concentrator per building of ``sim``, uploading to ingest at host:port
    under boot counter ``boot``; all closed on the way out."""
    concentrators = [
        SimConcentrator(b, keys[b.spec.concentrator_serial], host, port, boot=boot)
        for b in sim.buildings
    ]
    for c in concentrators:
        c.start()
    try:
        yield concentrators
    finally:
        await asyncio.gather(*(c.close() for c in concentrators))
