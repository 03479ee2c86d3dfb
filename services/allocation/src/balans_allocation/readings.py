"""Load registers and temperatures of a building into the dense arrays the kernels take.

Times: boundary j of a window is ``start + j hours``; a pulse register stamped ``ts`` is
the value at boundary ``ts``. A temperature row stamped ``ts`` is the mean of the hour
that ends at ``ts`` (the same end-of-hour convention), so hour i of the window
``[start + i h, start + (i+1) h)`` takes the temperature stamped ``start + (i+1) h``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import numpy as np

from balans_allocation.building import Meter
from balans_allocation.kernels import MISSING_REGISTER, MISSING_TEMP

HOUR = timedelta(hours=1)


def _index(ts: datetime, start: datetime) -> int:
    return int((ts - start) // HOUR)


async def load_registers(
    conn: asyncpg.Connection, meters: Sequence[Meter], start: datetime, boundaries: int
) -> np.ndarray:
    """int64 [meter, boundary] registers, ``MISSING_REGISTER`` where none was stored."""
    registers = np.full((len(meters), boundaries), MISSING_REGISTER, dtype=np.int64)
    if not meters:
        return registers
    row_of = {(m.module_serial, m.input): i for i, m in enumerate(meters)}
    rows = await conn.fetch(
        """select module_serial, input, ts, count from pulse_readings
           where module_serial = any($1::bigint[]) and ts >= $2 and ts <= $3
             and date_trunc('hour', ts) = ts""",
        sorted({m.module_serial for m in meters}),
        start,
        start + (boundaries - 1) * HOUR,
    )
    for r in rows:
        i = row_of.get((r["module_serial"], r["input"]))
        if i is not None:
            registers[i, _index(r["ts"], start)] = r["count"]
    return registers


async def load_temperatures(
    conn: asyncpg.Connection, serials: Sequence[int], start: datetime, hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """int16 [hour, pair] flow and return temperatures in 0.01 °C, ``MISSING_TEMP`` if absent.

    Values beyond the int16 range are stored as the nearest representable out-of-range
    value, so the kernel flags them rather than wrapping around.
    """
    t_flow = np.full((hours, len(serials)), MISSING_TEMP, dtype=np.int16)
    t_return = np.full((hours, len(serials)), MISSING_TEMP, dtype=np.int16)
    if not serials:
        return t_flow, t_return
    column_of = {s: c for c, s in enumerate(serials)}
    rows = await conn.fetch(
        """select module_serial, ts, supply_centi_c, return_centi_c from temperature_readings
           where module_serial = any($1::bigint[]) and ts > $2 and ts <= $3
             and date_trunc('hour', ts) = ts""",
        list(serials),
        start,
        start + hours * HOUR,
    )
    for r in rows:
        h = _index(r["ts"], start) - 1
        c = column_of[r["module_serial"]]
        t_flow[h, c] = np.clip(r["supply_centi_c"], -32767, 32767)
        t_return[h, c] = np.clip(r["return_centi_c"], -32767, 32767)
    return t_flow, t_return
