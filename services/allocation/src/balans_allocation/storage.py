"""The SQL that writes allocation's tables (declared in :mod:`balans_db.tables.allocation`).

Writes are idempotent upserts that touch a row only when its figures change: a
recomputation bumps ``revision`` of exactly the hours whose values moved, and returns
them, so the announcement names the hours that really changed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np

from balans_allocation.compute import BuildingResult
from balans_allocation.flags import Flag
from balans_allocation.metrics import DAYS_WRITTEN, FLAT_HOURS
from balans_allocation.readings import HOUR
from balans_db.queries import allocation

#: each written table's staging table (temporary: one COPY each, then one upsert); the
#: consumption rows also carry their building, for the days (``extend_days``). They are
#: made once per connection and emptied at every commit (``on commit delete rows``: an empty
#: file, no catalog change); rows left by an earlier call in the same transaction are
#: deleted first, in the same round trip. Made anew in every transaction (``on commit
#: drop``), each batch wrote and deleted their catalog rows, sent every backend an
#: invalidation, and planned each statement reading them again (a new table each time).
STAGES = {
    "meter_consumption": "_stage_consumption",
    "heat_allocation": "_stage_allocation",
    "allocation_building_hours": "_stage_building_hours",
}
PREPARE_STAGES = (
    "set local client_min_messages = warning; "  # not "already exists, skipping" each time
    + "; ".join(
        f"create temp table if not exists {stage} (like {table} including defaults"
        + (", building_id int not null" if table == "meter_consumption" else "")
        + ") on commit delete rows"
        for table, stage in STAGES.items()
    )
    + "; "
    + "; ".join(f"delete from {stage}" for stage in STAGES.values())
)


def _upsert(table: str, key: tuple[str, ...], columns: tuple[str, ...]) -> str:
    """INSERT from the table's staging table; update (revision + 1) only rows whose values
    differ."""
    values = [c for c in columns if c not in key]
    return f"""
        insert into {table} as t ({", ".join(columns)})
        select {", ".join(columns)} from {STAGES[table]}
        on conflict ({", ".join(key)}) do update set
            {", ".join(f"{c} = excluded.{c}" for c in values)},
            revision = t.revision + 1, computed_at = now()
        where ({", ".join(f"t.{c}" for c in values)})
              is distinct from ({", ".join(f"excluded.{c}" for c in values)})
        returning building_id, hour, revision"""


CONSUMPTION_COLUMNS = ("meter_id", "hour", "value", "unit", "estimated", "flags")
# per meter whose rows changed (inserted or updated), its first and last such hour, as
# three arrays
CONSUMPTION_UPSERT = f"""
    with changed as (
        insert into meter_consumption as t ({", ".join(CONSUMPTION_COLUMNS)})
        select {", ".join(CONSUMPTION_COLUMNS)} from _stage_consumption
        on conflict (meter_id, hour) do update set
            value = excluded.value, unit = excluded.unit,
            estimated = excluded.estimated, flags = excluded.flags
        where (t.value, t.estimated, t.flags) is distinct from
              (excluded.value, excluded.estimated, excluded.flags)
        returning meter_id, hour)
    select coalesce(array_agg(meter_id), '{{}}'), coalesce(array_agg(first), '{{}}'),
           coalesce(array_agg(last), '{{}}')
    from (select meter_id, min(hour) as first, max(hour) as last from changed
          group by meter_id) m"""
ALLOCATION_COLUMNS = (
    "building_id", "flat_id", "hour", "measured_kwh", "estimated", "common_kwh", "total_kwh",
    "flags", "method", "volume_m3", "delta_t_k", "k_kwh_per_m3k", "adjustment_kwh",
)  # fmt: skip
# per building-hour whose flat rows changed, how many were new and how many recomputed: one
# record a building-hour instead of one a flat-hour (a history's priming or a catch-up
# returned millions, each decoded in Python)
ALLOCATION_UPSERT = f"""
    with changed as ({_upsert("heat_allocation", ("flat_id", "hour"), ALLOCATION_COLUMNS)})
    select building_id, hour, count(*) filter (where revision = 1) as new,
           count(*) filter (where revision > 1) as recomputed
    from changed group by building_id, hour"""
BUILDING_COLUMNS = (
    "building_id", "hour", "building_kwh", "flats_measured_kwh", "common_kwh",
    "estimated_area_fraction", "flags", "methodology",
)  # fmt: skip
# the buildings' watermarks move in the same statement ($1 buildings, $2 boundaries)
BUILDING_UPSERT = f"""
    with marks as (
        insert into allocation_watermarks (building_id, complete_until)
        select * from unnest($1::int[], $2::timestamptz[])
        on conflict (building_id) do update
        set complete_until = excluded.complete_until, updated_at = now())
    {_upsert("allocation_building_hours", ("building_id", "hour"), BUILDING_COLUMNS)}"""


async def _stage(
    conn: asyncpg.Connection, table: str, columns: tuple[str, ...], rows: list
) -> None:
    await conn.copy_records_to_table(STAGES[table], records=rows, columns=list(columns))


async def _rows(written: Sequence[Written], rows_of: Callable[[Written], list]) -> list:
    """Every building's rows for a COPY, made building by building: the other shares of
    the batch send their next statement between two buildings (as between two buildings'
    computations, :func:`balans_allocation.compute.compute_buildings`)."""
    rows: list = []
    for w in written:
        await asyncio.sleep(0)
        rows += rows_of(w)
    return rows


def _hours(start: datetime, n: int) -> list[datetime]:
    return [start + i * HOUR for i in range(n)]


def _nullable(values: np.ndarray) -> list[float | None]:
    """The values as floats, NaN as None (SQL NULL): one numpy pass, not a NaN test per
    value (about 15 times faster on a backlog's 13 000 rows)."""
    out = values.astype(object)
    out[np.isnan(values)] = None
    return out.tolist()


def _consumption_rows(building_id: int, result: BuildingResult) -> list[tuple]:
    c = result.consumption
    hours = _hours(result.start, c.value.shape[1])
    meter, hour = np.nonzero(~np.isnan(c.value) & c.in_service)
    flags = c.flags[meter, hour].astype(np.int64)
    return list(
        zip(
            [c.meters[i].id for i in meter.tolist()],
            [hours[h] for h in hour.tolist()],
            c.value[meter, hour].tolist(),
            [c.meters[i].unit for i in meter.tolist()],
            ((flags & Flag.ESTIMATED) != 0).tolist(),
            flags.tolist(),
            [building_id] * meter.size,
            strict=True,
        )
    )


def _allocation_rows(building_id: int, flat_ids: np.ndarray, result: BuildingResult) -> list:
    a, t = result.allocation, result.trail
    all_hours = _hours(result.start, a.total.shape[0])
    rows = np.array(result.hours_with_data(), dtype=np.int64)
    h = np.repeat(rows, flat_ids.size)
    f = np.tile(np.arange(flat_ids.size), rows.size)
    volume, delta_t = t.volume_m3[h, f].astype(np.float64), t.delta_t_k[h, f].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where((volume > 0) & (delta_t > 0), a.measured[h, f] / (volume * delta_t), np.nan)
    flags = a.flags[h, f].astype(np.int64)
    n = h.size
    return list(
        zip(
            [building_id] * n, flat_ids[f].tolist(), [all_hours[i] for i in h.tolist()],
            a.measured[h, f].tolist(), ((flags & Flag.ESTIMATED) != 0).tolist(),
            a.common[h, f].tolist(), a.total[h, f].tolist(), flags.tolist(),
            [result.method] * n, _nullable(volume), _nullable(delta_t), _nullable(k),
            a.adjustment[h, f].tolist(),
            strict=True,
        )
    )  # fmt: skip


@dataclass(frozen=True)
class Written:
    """One building's computation to store. ``fresh_from``: the building's watermark
    before this computation, if it has one; no row of the building was ever stored at or
    after it (every computation ends at the watermark it then sets), so the days of the
    hours from there are extended rather than rebuilt (:func:`write_results`)."""

    building_id: int
    flat_ids: np.ndarray
    result: BuildingResult
    methodology: dict
    fresh_from: datetime | None = None


def _building_rows(w: Written) -> list[tuple]:
    a = w.result.allocation
    hours = _hours(w.result.start, a.total.shape[0])
    methodology = json.dumps(w.methodology)
    return [
        (
            w.building_id, hours[h], float(a.building_kwh[h]), float(a.measured[h].sum()),
            float(a.common[h].sum()), float(a.estimated_area_fraction[h]),
            int(a.building_flags[h]), methodology,
        )
        for h in w.result.hours_with_data()
    ]  # fmt: skip


async def _drop_out_of_service(conn: asyncpg.Connection, written: Sequence[Written]) -> set[int]:
    """Remove consumption rows of computed hours in which a meter was not on its channel:
    an exchange recorded late moves the readings after it to the new meter, and the old
    meter's rows computed from them before must go. Returns the buildings that lost rows
    (their days are rebuilt)."""
    doomed: list[tuple[int, datetime]] = []
    building_of: dict[int, int] = {}
    for w in written:
        c = w.result.consumption
        hours = _hours(w.result.start, c.value.shape[1])
        meter, hour = np.nonzero(~c.in_service)
        doomed += [(c.meters[i].id, hours[h]) for i, h in zip(meter, hour, strict=True)]
        building_of |= {c.meters[i].id: w.building_id for i in set(meter.tolist())}
    if not doomed:
        return set()
    rows = await conn.fetch(
        """delete from meter_consumption t using unnest($1::int[], $2::timestamptz[]) d(m, h)
           where t.meter_id = d.m and t.hour = d.h returning t.meter_id""",
        [m for m, _ in doomed],
        [h for _, h in doomed],
    )
    return {building_of[r["meter_id"]] for r in rows}


def _span(w: Written) -> tuple[int, datetime, datetime] | None:
    """(building, first hour, last hour) the computation wrote or deleted hours in."""
    n = max(w.result.consumption.value.shape[1], w.result.allocation.total.shape[0])
    return (w.building_id, w.result.start, w.result.start + (n - 1) * HOUR) if n else None


def _transaction(conn: asyncpg.Connection) -> AbstractAsyncContextManager[object]:
    """A transaction unless the caller's is open: a savepoint in it would cost two round
    trips and undo nothing the caller's rollback does not (a failure here propagates)."""
    return nullcontext() if conn.is_in_transaction() else conn.transaction()


async def write_results(
    conn: asyncpg.Connection,
    written: Sequence[Written],
    watermarks: dict[int, datetime] | None = None,
) -> dict[int, tuple[list[datetime], list[datetime]]]:
    """Store many buildings' computations with one COPY and one upsert per table, and
    their days, and move ``watermarks`` (building -> boundary) in the buildings' upsert;
    return, per building, (new hours, recomputed hours whose figures changed)."""
    marks = watermarks or {}
    async with _transaction(conn):
        out_of_service = await _drop_out_of_service(conn, written)
        await conn.execute(PREPARE_STAGES)
        await _stage(
            conn, "meter_consumption", (*CONSUMPTION_COLUMNS, "building_id"),
            await _rows(written, lambda w: _consumption_rows(w.building_id, w.result)),
        )  # fmt: skip
        meters, firsts, lasts = await conn.fetchrow(CONSUMPTION_UPSERT)
        await _stage(
            conn, "heat_allocation", ALLOCATION_COLUMNS,
            await _rows(written, lambda w: _allocation_rows(w.building_id, w.flat_ids, w.result)),
        )  # fmt: skip
        flat_rows = await conn.fetch(ALLOCATION_UPSERT)
        await _stage(
            conn, "allocation_building_hours", BUILDING_COLUMNS,
            [row for w in written for row in _building_rows(w)],
        )  # fmt: skip
        building_rows = await conn.fetch(BUILDING_UPSERT, list(marks), list(marks.values()))
        extend, rebuild = _days_to_write(
            written,
            out_of_service,
            flat_rows,
            dict(zip(meters, zip(firsts, lasts, strict=True), strict=True)),
        )
        await allocation.extend_days(
            conn, STAGES["heat_allocation"], STAGES["meter_consumption"], extend
        )
        await allocation.refresh_days(conn, [span for w in rebuild if (span := _span(w))])
    DAYS_WRITTEN.labels("extended").inc(len(extend))
    DAYS_WRITTEN.labels("rebuilt").inc(len(rebuild))
    FLAT_HOURS.labels("new").inc(sum(r["new"] for r in flat_rows))
    FLAT_HOURS.labels("recomputed").inc(sum(r["recomputed"] for r in flat_rows))
    changed: dict[int, tuple[set[datetime], set[datetime]]] = {
        w.building_id: (set(), set()) for w in written
    }
    for r in flat_rows:
        if r["new"]:
            changed[r["building_id"]][False].add(r["hour"])
        if r["recomputed"]:
            changed[r["building_id"]][True].add(r["hour"])
    for r in building_rows:
        changed[r["building_id"]][r["revision"] > 1].add(r["hour"])
    return {b: (sorted(new), sorted(recomputed)) for b, (new, recomputed) in changed.items()}


def _days_to_write(
    written: Sequence[Written],
    out_of_service: set[int],
    flat_rows: list[asyncpg.Record],
    meters_changed: dict[int, tuple[datetime, datetime]],
) -> tuple[dict[int, list[datetime]], list[Written]]:
    """Which buildings' days are extended by their new hours (building -> those hours; an
    hourly event's one, a catch-up's several) and which are rebuilt from their hours. A
    building is extended when the only hours it changed are its new hours at or after
    ``fresh_from``, one after the other (and the upsert inserted every flat's row in each);
    rebuilt when an earlier hour changed (late data), the new hours have a gap, a meter's
    rows changed outside them, a meter left its channel in the range, or it has no
    watermark; left alone when nothing changed. (``flat_rows``: per building-hour whose flat
    rows the upsert changed, how many it inserted and recomputed; ``meters_changed``: per
    meter, the first and last hour of its rows the upsert changed.)"""
    flats: dict[int, list[asyncpg.Record]] = {}
    for r in flat_rows:
        flats.setdefault(r["building_id"], []).append(r)
    extend: dict[int, list[datetime]] = {}
    rebuild: list[Written] = []
    for w in written:
        rows = flats.get(w.building_id, [])
        meters = [
            meters_changed[m.id] for m in w.result.consumption.meters if m.id in meters_changed
        ]
        if not rows and not meters and w.building_id not in out_of_service:
            continue  # nothing changed: its days are still the sums of their hours
        new = [
            hour
            for h in w.result.hours_with_data()
            if w.fresh_from is not None and (hour := w.result.start + h * HOUR) >= w.fresh_from
        ]
        if (
            new
            and new[-1] - new[0] == (len(new) - 1) * HOUR  # no hour between without rows
            and w.building_id not in out_of_service
            and sorted(r["hour"] for r in rows) == new
            and all(r["new"] == w.flat_ids.size and not r["recomputed"] for r in rows)
            and all(new[0] <= first and last <= new[-1] for first, last in meters)
        ):
            extend[w.building_id] = new
        else:
            rebuild.append(w)
    return extend, rebuild


async def write_result(
    conn: asyncpg.Connection,
    building_id: int,
    flat_ids: np.ndarray,
    result: BuildingResult,
    methodology: dict,
) -> tuple[list[datetime], list[datetime]]:
    """:func:`write_results` for one building."""
    written = await write_results(conn, [Written(building_id, flat_ids, result, methodology)])
    return written[building_id]


async def watermarks(conn: asyncpg.Connection, building_ids: Sequence[int]) -> dict[int, datetime]:
    """The watermark of each of these buildings that has one."""
    rows = await conn.fetch(
        """select building_id, complete_until from allocation_watermarks
           where building_id = any($1::int[])""",
        list(building_ids),
    )
    return {r["building_id"]: r["complete_until"] for r in rows}
