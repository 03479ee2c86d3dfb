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


def _columns(rows: list[asyncpg.Record], count: int) -> list[np.ndarray]:
    """The first ``count`` fields of the rows as int64 columns."""
    if not rows:
        return [np.empty(0, dtype=np.int64) for _ in range(count)]
    return list(np.array([tuple(r) for r in rows], dtype=np.int64).reshape(-1, count).T)


async def load_registers(
    conn: asyncpg.Connection, meters: Sequence[Meter], start: datetime, boundaries: int
) -> np.ndarray:
    """int64 [meter, boundary] registers, ``MISSING_REGISTER`` where none was stored."""
    registers = np.full((len(meters), boundaries), MISSING_REGISTER, dtype=np.int64)
    if not meters:
        return registers
    rows = await conn.fetch(
        """select m.i - 1, (extract(epoch from p.ts - $3) / 3600)::bigint, p.count
           from unnest($1::bigint[], $2::smallint[]) with ordinality as m(serial, input, i)
           join pulse_readings p on p.module_serial = m.serial and p.input = m.input
           where p.ts >= $3 and p.ts <= $4 and date_trunc('hour', p.ts) = p.ts""",
        [m.module_serial for m in meters],
        [m.input for m in meters],
        start,
        start + (boundaries - 1) * HOUR,
    )
    row, boundary, count = _columns(rows, 3)
    registers[row, boundary] = count
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
    rows = await conn.fetch(
        """select m.i - 1, (extract(epoch from t.ts - $2) / 3600)::bigint - 1,
                  t.supply_centi_c, t.return_centi_c
           from unnest($1::bigint[]) with ordinality as m(serial, i)
           join temperature_readings t on t.module_serial = m.serial
           where t.ts > $2 and t.ts <= $3 and date_trunc('hour', t.ts) = t.ts""",
        list(serials),
        start,
        start + hours * HOUR,
    )
    column, hour, supply, ret = _columns(rows, 4)
    t_flow[hour, column] = np.clip(supply, -32767, 32767)
    t_return[hour, column] = np.clip(ret, -32767, 32767)
    return t_flow, t_return
