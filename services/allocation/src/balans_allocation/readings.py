"""Load registers and temperatures into the dense arrays the kernels take, for many
windows (one per building) in one query each.

Times: boundary j of a window is ``start + j hours``; a pulse register stamped ``ts`` is
the value at boundary ``ts``. A temperature row stamped ``ts`` is the mean of the hour
that ends at ``ts`` (the same end-of-hour convention), so hour i of the window
``[start + i h, start + (i+1) h)`` takes the temperature stamped ``start + (i+1) h``.

The registers and temperatures come from ingest's published queries
(:mod:`balans_db.queries.ingest`), one query for all windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from balans_allocation.building import Meter
from balans_allocation.kernels import MISSING_REGISTER, MISSING_TEMP
from balans_db.queries import ingest

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class RegisterWindow:
    """Registers of ``meters`` at ``boundaries`` hour boundaries from ``start``.

    In the ``edge`` hours at either end only the register nearest to the inner boundaries
    is loaded: consumption is worked out stretch by stretch between consecutive known
    registers, so the inner hours come out the same as with every register of the edges,
    for a fraction of the rows.
    """

    meters: Sequence[Meter]
    start: datetime
    boundaries: int
    edge: int = 0

    @property
    def inner(self) -> tuple[datetime, datetime]:
        return self.start + self.edge * HOUR, self.start + (self.boundaries - 1 - self.edge) * HOUR

    @property
    def end(self) -> datetime:
        return self.start + (self.boundaries - 1) * HOUR


@dataclass(frozen=True)
class TemperatureWindow:
    """Hourly temperature pairs of the modules ``serials`` for ``hours`` hours from ``start``."""

    serials: Sequence[int]
    start: datetime
    hours: int


def _columns(rows: list[asyncpg.Record], count: int) -> list[np.ndarray]:
    """Rows of (channel, array, array, ...) aggregated per channel, unfolded into ``count``
    int64 columns, the channel repeated along its arrays. One row per channel instead of
    one per reading: asyncpg decodes arrays several times faster than records."""
    if not rows:
        return [np.empty(0, dtype=np.int64) for _ in range(count)]
    lengths = [len(r[1]) for r in rows]
    channel = np.repeat(np.array([r[0] for r in rows], dtype=np.int64), lengths)
    return [channel] + [
        np.concatenate([np.asarray(r[k], dtype=np.int64) for r in rows]) for k in range(1, count)
    ]


def _offsets(sizes: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


async def load_register_windows(
    conn: asyncpg.Connection, windows: Sequence[RegisterWindow]
) -> list[np.ndarray]:
    """Per window, int64 [meter, boundary] registers, ``MISSING_REGISTER`` where none was
    stored."""
    offsets = _offsets([len(w.meters) for w in windows])
    width = max((w.boundaries for w in windows), default=0)
    registers = np.full((int(offsets[-1]), width), MISSING_REGISTER, dtype=np.int64)
    if registers.size:
        used = [w for w in windows if w.meters]
        inner = [w.inner for w in used]
        rows = await ingest.hourly_register_arrays(
            conn,
            [m.module_serial for w in used for m in w.meters],
            [m.input for w in used for m in w.meters],
            [k for k, w in enumerate(used) for _ in w.meters],
            [w.start for w in used],
            [a for a, _ in inner],
            [b for _, b in inner],
            [w.end for w in used],
            [m.period for w in used for m in w.meters],
        )
        row, boundary, count = _columns(rows, 3)
        registers[row, boundary] = count
    return [
        np.ascontiguousarray(registers[offsets[k] : offsets[k + 1], : w.boundaries])
        for k, w in enumerate(windows)
    ]


async def load_temperature_windows(
    conn: asyncpg.Connection, windows: Sequence[TemperatureWindow]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per window, int16 [hour, pair] flow and return temperatures in 0.01 °C,
    ``MISSING_TEMP`` if absent.

    Values beyond the int16 range are stored as the nearest representable out-of-range
    value, so the kernel flags them rather than wrapping around.
    """
    offsets = _offsets([len(w.serials) for w in windows])
    height = max((w.hours for w in windows), default=0)
    t_flow = np.full((height, int(offsets[-1])), MISSING_TEMP, dtype=np.int16)
    t_return = t_flow.copy()
    if t_flow.size:
        rows = await ingest.hourly_temperature_arrays(
            conn,
            [s for w in windows for s in w.serials],
            [w.start for w in windows for _ in w.serials],
            [w.start + w.hours * HOUR for w in windows for _ in w.serials],
        )
        column, hour, supply, ret = _columns(rows, 4)
        t_flow[hour, column] = np.clip(supply, -32767, 32767)
        t_return[hour, column] = np.clip(ret, -32767, 32767)
    return [
        (
            t_flow[: w.hours, offsets[k] : offsets[k + 1]].copy(),
            t_return[: w.hours, offsets[k] : offsets[k + 1]].copy(),
        )
        for k, w in enumerate(windows)
    ]
