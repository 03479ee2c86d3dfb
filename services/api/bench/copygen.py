"""The benchmark's hourly data, built with numpy and loaded with binary COPY.

The same series as ``synthetic.py`` (which the tests use; one INSERT ... SELECT per table
is simpler there): per flat heat with a daily and a yearly wave, per meter consumption
with a daily wave, building meters at 103 % of their flats, allocation's building hours
and the flats' days.
Built in memory a building at a time and sent as PostgreSQL's binary COPY format, so the
server parses no text and plans no query: a building's year is a few seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from balans_db.queries import allocation

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_TRAILER = (-1).to_bytes(2, "big", signed=True)
_METHOD = b"synthetic"

Field = tuple[str, str]  # (name, numpy big-endian type)


def _tuples(fields: list[Field], count: int) -> np.ndarray:
    """``count`` binary COPY tuples of ``fields``, lengths filled in, values zero."""
    dtype: list[tuple[str, str]] = [("n", ">i2")]
    for name, kind in fields:
        dtype += [(f"len_{name}", ">i4"), (name, kind)]
    rows = np.zeros(count, dtype=dtype)
    rows["n"] = len(fields)
    for name, _ in fields:
        rows[f"len_{name}"] = rows.dtype[name].itemsize
    return rows


def _copy_bytes(rows: np.ndarray) -> bytes:
    return _HEADER + rows.tobytes() + _TRAILER


async def _source(payload: bytes) -> AsyncIterator[bytes]:
    chunk = 8 << 20
    for offset in range(0, len(payload), chunk):
        yield payload[offset : offset + chunk]


async def _copy(conn: asyncpg.Connection, table: str, rows: np.ndarray) -> None:
    columns = [name for name in rows.dtype.names if name != "n" and not name.startswith("len_")]
    await conn.copy_to_table(
        table, source=_source(_copy_bytes(rows)), columns=columns, format="binary"
    )


def _hours(start: datetime, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(PostgreSQL timestamps in µs since 2000, hour of day, day of year) of each hour."""
    first = int((start - _PG_EPOCH).total_seconds()) * 1_000_000
    pg = first + np.arange(count, dtype=np.int64) * 3_600_000_000
    unix_s = (pg // 1_000_000) + int(_PG_EPOCH.timestamp())
    hour = (unix_s // 3600) % 24
    doy = ((unix_s // 86400) - 4) % 365 + 1  # close enough to the calendar's day of year
    return pg, hour, doy


async def fill_building(
    conn: asyncpg.Connection, building_id: int, start: datetime, hours: int
) -> int:
    """Load ``hours`` hours from ``start`` for the building; returns the rows written."""
    pg, hour, doy = _hours(start, hours)
    daily = 1 + 0.25 * np.sin(2 * np.pi * hour / 24.0)
    yearly = 1.2 + np.cos(2 * np.pi * doy / 365.0)
    flats = np.array(
        [
            r["id"]
            for r in await conn.fetch("select id from flats where building_id = $1", building_id)
        ],
        dtype=np.int32,
    )
    measured = (0.6 + (flats % 7) * 0.1)[:, None] * (yearly * daily)[None, :]
    heat = _tuples(
        [
            ("building_id", ">i4"),
            ("flat_id", ">i4"),
            ("hour", ">i8"),
            ("measured_kwh", ">f8"),
            ("common_kwh", ">f8"),
            ("total_kwh", ">f8"),
            ("method", f"S{len(_METHOD)}"),
        ],
        measured.size,
    )
    heat["building_id"] = building_id
    heat["flat_id"] = np.repeat(flats, hours)
    heat["hour"] = np.tile(pg, len(flats))
    heat["measured_kwh"] = measured.ravel()
    heat["common_kwh"] = 0.15 * measured.ravel()
    heat["total_kwh"] = 1.15 * measured.ravel()
    heat["method"] = _METHOD
    await _copy(conn, "heat_allocation", heat)

    totals = 1.15 * measured.sum(axis=0)
    building_hours = _tuples(
        [
            ("building_id", ">i4"),
            ("hour", ">i8"),
            ("building_kwh", ">f8"),
            ("flats_measured_kwh", ">f8"),
            ("common_kwh", ">f8"),
            ("estimated_area_fraction", ">f8"),
        ],
        hours,
    )
    building_hours["building_id"] = building_id
    building_hours["hour"] = pg
    building_hours["building_kwh"] = totals
    building_hours["flats_measured_kwh"] = measured.sum(axis=0)
    building_hours["common_kwh"] = 0.15 * measured.sum(axis=0)
    await _copy(conn, "allocation_building_hours", building_hours)

    meters = await conn.fetch(
        "select id, unit, role, utility from meters where building_id = $1 order by id",
        building_id,
    )
    meter_daily = 1 + 0.5 * np.sin(2 * np.pi * hour / 24.0)
    values: list[np.ndarray] = []
    per_utility: dict[str, np.ndarray] = {"heat": totals}
    for m in meters:
        if m["role"] == "building":
            values.append(np.zeros(0))  # filled below, once the flats' sums are known
            continue
        scale = (1.0 if m["unit"] == "kWh" else 0.01) * (1 + m["id"] % 3)
        series = scale * meter_daily
        values.append(series)
        if m["role"] == "flat" and m["utility"] != "heat":
            per_utility[m["utility"]] = per_utility.get(m["utility"], 0) + series
    for i, m in enumerate(meters):
        if m["role"] == "building":
            values[i] = 1.03 * per_utility.get(m["utility"], np.zeros(hours))
    written = len(heat) + len(building_hours)
    for unit in ("kWh", "m3"):  # text is variable-length: one fixed layout per unit
        chosen = [i for i, m in enumerate(meters) if m["unit"] == unit]
        if not chosen:
            continue
        rows = _tuples(
            [("meter_id", ">i4"), ("hour", ">i8"), ("value", ">f8"), ("unit", f"S{len(unit)}")],
            hours * len(chosen),
        )
        ids = np.array([meters[i]["id"] for i in chosen], dtype=np.int32)
        rows["meter_id"] = np.repeat(ids, hours)
        rows["hour"] = np.tile(pg, len(chosen))
        rows["value"] = np.concatenate([values[i] for i in chosen])
        rows["unit"] = unit.encode()
        await _copy(conn, "meter_consumption", rows)
        written += len(rows)
    await allocation.refresh_days(conn, [(building_id, start, start + timedelta(hours=hours - 1))])
    return written
