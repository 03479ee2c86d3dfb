"""What ingest publishes: the readings as stored by its persister (tables in
:mod:`balans_db.tables.ingest`), and the one writer other producers of readings use.

Times: a pulse register stamped ``ts`` is the meter's count at ``ts``; a temperature or
status row stamped ``ts`` covers the hour that ends at ``ts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from balans_db.queries import Db


@dataclass(frozen=True)
class ChannelPeriod:
    """When a meter is on its channel: ``[valid_from, valid_to)`` (None: since always /
    still), and the module's counts at the ends where an exchange record gives them."""

    valid_from: datetime | None = None
    valid_to: datetime | None = None
    count_at_start: int | None = None
    count_at_end: int | None = None


READING_COLUMNS: dict[str, tuple[str, ...]] = {
    "pulse_readings": ("module_serial", "input", "ts", "count"),
    "temperature_readings": ("module_serial", "ts", "supply_centi_c", "return_centi_c"),
    "module_status": (
        "module_serial", "ts", "battery_mv", "rssi_dbm", "hops", "parent_serial", "tamper",
        "error_bits",
    ),
    "module_events": ("module_serial", "ts", "code"),
}  # fmt: skip
"""Each readings table and its columns, in the order rows are given to
:func:`insert_readings`."""


def _position(column: str) -> str:
    """A row's time as a position: whole hours after the query's ``$2``."""
    return f"(extract(epoch from {column} - $2::timestamptz) / 3600)::int"


# --- single meters and flats (the api) ---


async def meter_registers(
    db: Db, meter_id: int, start: datetime, end: datetime, limit: int = 20000
) -> list[Any]:
    """A meter's raw registers (ts, count, ``value`` = register_offset + count × pulse
    weight) in [start, end) while it is on its channel (a meter exchange ends one meter's
    readings and begins the next one's), the first ``limit``."""
    return await db.fetch(
        """select p.ts, p.count, c.register_offset + p.count * m.pulse_weight as value
           from channels c join meters m on m.id = c.meter_id
           join pulse_readings p on p.module_serial = c.module_serial and p.input = c.input
           where c.meter_id = $1 and p.ts >= $2 and p.ts < $3
             and (c.valid_from is null or p.ts > c.valid_from)
             and (c.valid_to is null or p.ts < c.valid_to)
           order by p.ts limit $4""",
        meter_id,
        start,
        end,
        limit,
    )


async def flat_registers_at(db: Db, flat_id: int, at: datetime) -> list[Any]:
    """Every meter of the flat in service by ``at`` (id, serial, utility, unit, weight,
    ``offset``) with its last register at or before ``at`` (ts, count; None if there is
    none): a meter exchanged before ``at`` shows its final count, one installed by an
    exchange and not read since its start count. Its value is ``offset + count * weight``."""
    return await db.fetch(
        """select m.id, m.serial, m.utility, m.unit, m.pulse_weight::float8 as weight,
                  c.register_offset::float8 as offset, r.ts, r.count
           from meters m join channels c on c.meter_id = m.id
           left join lateral (
             select * from (
               select c.valid_to as ts, c.count_at_end as count
               where c.valid_to <= $2 and c.count_at_end is not null
               union all
               (select ts, count from pulse_readings p
                where p.module_serial = c.module_serial and p.input = c.input and p.ts <= $2
                  and (c.valid_from is null or p.ts > c.valid_from)
                  and (c.valid_to is null or p.ts < c.valid_to)
                order by ts desc limit 1)
               union all
               select c.valid_from, c.count_at_start where c.count_at_start is not null
             ) known order by ts desc limit 1) r on true
           where m.flat_id = $1 and (c.valid_from is null or c.valid_from <= $2)
           order by m.id""",
        flat_id,
        at,
    )


MEAN_FLAT_DELTA_T = """
select avg(t.supply_centi_c - t.return_centi_c) / 100.0 as delta_t
from temperature_readings t join sensor_pairs p on p.module_serial = t.module_serial
where p.building_id = {building} and p.position = 'flat'
  and ({flat}::int is null or p.flat_id = {flat}) and t.ts >= {start} and t.ts < {end}"""
"""A published select (one row, ``delta_t``) for composing: the mean supply - return of a
building's flat sensor pairs (of one flat unless ``{flat}`` is null) in [start, end);
format it with the SQL of each parameter."""


async def mean_flat_delta_t(
    db: Db, building_id: int, flat_id: int | None, start: datetime, end: datetime
) -> float | None:
    """Mean supply - return (°C) of the building's flat sensor pairs (of one flat, if
    given) over readings stamped in [start, end); None without readings."""
    value = await db.fetchval(
        MEAN_FLAT_DELTA_T.format(building="$1", flat="$2", start="$3", end="$4"),
        building_id,
        flat_id,
        start,
        end,
    )
    return float(value) if value is not None else None


# --- the radio network (the api, the fleet collector) ---

MODULES_WITH_STATUS = """
select rm.id, rm.serial, c.serial as concentrator_serial, rm.subnet, rm.building_id,
       rm.flat_id, rm.riser_id, rm.floor, s.ts as last_seen, s.battery_mv, s.rssi_dbm,
       s.hops, s.parent_serial, s.tamper, s.error_bits
from radio_modules rm
join concentrators c on c.id = rm.concentrator_id
left join lateral (
    select ts, battery_mv, rssi_dbm, hops, parent_serial, tamper, error_bits
    from module_status ms where ms.module_serial = rm.serial order by ts desc limit 1
) s on true
"""
"""A published select for paging: every radio module (``rm``) with its last status."""

CONCENTRATORS_WITH_LAST_SEEN = """
select c.id, c.serial, c.building_id, c.model, c.installed_on,
       (select count(*) from radio_modules rm where rm.concentrator_id = c.id) as modules,
       (select max(ms.ts) from module_status ms
        join radio_modules rm on rm.serial = ms.module_serial
        where rm.concentrator_id = c.id and ms.ts > now() - interval '7 days') as last_seen
from concentrators c
"""
"""A published select for paging: every concentrator (``c``) with its module count and
when one of its modules last reported (within 7 days)."""


BUILDING_EQUIPMENT = """
select b.id, b.name, b.layout,
  (select count(*) from flats where building_id = b.id) as flats,
  (select count(*) from meters where building_id = b.id) as meters,
  (select count(*) from radio_modules where building_id = b.id) as modules,
  (select count(*) from radio_modules rm where rm.building_id = b.id and not exists (
     select 1 from module_status ms where ms.module_serial = rm.serial
     and ms.ts > now() - interval '24 hours')) as modules_silent_24h,
  (select count(*) from radio_modules rm where rm.building_id = b.id and (
     select battery_mv from module_status ms where ms.module_serial = rm.serial
     order by ts desc limit 1) < 3300) as modules_low_battery
from buildings b where b.id = {building}"""
"""A published select for composing (format it with the SQL of the parameter): the
building (id, name, layout) with its counts of flats, meters, modules, modules silent for
24 h and modules whose last battery reading is under 3.3 V; no row if there is no such
building."""


async def concentrator_counts(db: Db, silent_after: timedelta) -> Any:
    """``total`` concentrators and those ``silent``: none of whose modules reported within
    ``silent_after`` (wall clock)."""
    return await db.fetchrow(
        """select count(*) as total,
                  count(*) filter (where not exists (
                      select 1 from radio_modules m
                      join module_status s on s.module_serial = m.serial
                      where m.concentrator_id = c.id and s.ts > now() - $1::interval
                  )) as silent
           from concentrators c""",
        silent_after,
    )


async def battery_counts(db: Db, lookback: timedelta, low_mv: int) -> Any:
    """Modules ``reporting`` within ``lookback`` (wall clock), and those whose latest
    voltage is ``low`` (under ``low_mv``)."""
    return await db.fetchrow(
        """select count(*) as reporting, count(*) filter (where battery_mv < $2) as low
           from (
               select distinct on (module_serial) battery_mv
               from module_status
               where ts > now() - $1::interval
               order by module_serial, ts desc
           ) latest""",
        lookback,
        low_mv,
    )


# --- windows of a building as arrays (balance) ---


async def tamper_positions(
    db: Db, serials: list[int], first: datetime, last: datetime
) -> list[Any]:
    """Per module (``module_serial``), the ``positions`` (hours after ``first``) of its
    status rows stamped in [first, last] that carry the tamper flag."""
    return await db.fetch(
        f"""select module_serial, array_agg({_position("ts")}) positions
           from module_status
           where module_serial = any($1::bigint[]) and tamper and ts >= $2 and ts <= $3
           group by module_serial""",
        serials,
        first,
        last,
    )


async def status_positions(
    db: Db, serials: list[int], first: datetime, last: datetime
) -> list[Any]:
    """Per module (``module_serial``), the ``positions`` (hours after ``first``) of its
    status rows stamped in [first, last] and their ``battery`` (mV, float)."""
    return await db.fetch(
        f"""select module_serial, array_agg({_position("ts")}) positions,
                  array_agg(battery_mv::float8) battery
           from module_status
           where module_serial = any($1::bigint[]) and ts >= $2 and ts <= $3
           group by module_serial""",
        serials,
        first,
        last,
    )


async def register_positions(
    db: Db, serials: list[int], first: datetime, last: datetime
) -> list[Any]:
    """Per channel (``module_serial``, ``input``), the ``positions`` (hours after
    ``first``) of its registers stamped in [first, last]."""
    return await db.fetch(
        f"""select module_serial, input, array_agg({_position("ts")}) positions
           from pulse_readings
           where module_serial = any($1::bigint[]) and ts >= $2 and ts <= $3
           group by module_serial, input""",
        serials,
        first,
        last,
    )


async def billed_pair_temperature_positions(
    db: Db, building_id: int, first: datetime, last: datetime
) -> list[Any]:
    """Per sensor pair a flat's or riser's heat rests on (every pair but the building's):
    ``module_serial``, ``position``, the ``flat`` number and ``floor``, the ``riser``
    number (None where they do not apply) and its hourly ``supply`` and ``return_`` °C at
    ``positions`` (hours after ``first``; rows stamped in [first, last])."""
    return await db.fetch(
        f"""select p.module_serial, p.position, f.number flat, f.floor, r.number riser,
                   coalesce(array_agg({_position("t.ts")} order by t.ts)
                            filter (where t.ts is not null), '{{}}') positions,
                   coalesce(array_agg(t.supply_centi_c::float8 / 100 order by t.ts)
                            filter (where t.ts is not null), '{{}}') supply,
                   coalesce(array_agg(t.return_centi_c::float8 / 100 order by t.ts)
                            filter (where t.ts is not null), '{{}}') return_
            from sensor_pairs p
            left join flats f on f.id = p.flat_id
            left join risers r on r.id = p.riser_id
            left join temperature_readings t
                   on t.module_serial = p.module_serial and t.ts >= $2 and t.ts <= $3
            where p.building_id = $1 and p.position <> 'building'
            group by p.module_serial, p.position, f.number, f.floor, r.number
            order by p.module_serial""",
        building_id,
        first,
        last,
    )


async def building_temperature_positions(
    db: Db, building_id: int, first: datetime, last: datetime
) -> Any:
    """The building sensor pair's hourly means stamped in [first, last]: ``positions``
    (hours after ``first``), ``supply`` and ``return_`` (°C); None fields without rows."""
    return await db.fetchrow(
        f"""select array_agg({_position("t.ts")}) positions,
                  array_agg(t.supply_centi_c::float8 / 100) supply,
                  array_agg(t.return_centi_c::float8 / 100) return_
           from temperature_readings t
           join sensor_pairs p on p.module_serial = t.module_serial
           where p.building_id = $1 and p.position = 'building' and t.ts >= $2 and t.ts <= $3""",
        building_id,
        first,
        last,
    )


# --- registers and temperatures for allocation's kernels ---


# SQL: channels (building_id, serial, input and i, the 1-based position; parallel arrays
# $1-$3) with their building's bounds (building ids $4 and the arrays after it): a
# building's bounds are sent once
_CHANNELS_OF_BUILDINGS = """(select c.*, {columns}
     from unnest($1::int[], $2::bigint[], $3::smallint[])
          with ordinality as c(building_id, serial, input, i)
     join unnest($4::int[], {arrays}) as w(building_id, {columns}) using (building_id))"""


async def latest_registers(
    db: Db,
    building_ids: Sequence[int],
    serials: Sequence[int],
    inputs: Sequence[int],
    buildings: Sequence[int],
    since: Sequence[datetime],
    lowest: datetime | None,
    upper: datetime,
) -> list[Any]:
    """Per channel (building, module, input: parallel lists), the ``latest`` register stamp
    at or after its building's ``since`` (parallel to ``buildings``; no row when there is
    none) and not after ``upper``; ``lowest`` is the least ``since``, so PostgreSQL prunes
    older partitions, and ``upper`` the empty future ones (each probed per channel
    without it). One backward index probe per channel: a join over the newest hour's rows
    is planned from statistics that never hold that hour yet (estimated at one row) and
    became a scan of the month's partition."""
    channels = _CHANNELS_OF_BUILDINGS.format(columns="t0", arrays="$5::timestamptz[]")
    return await db.fetch(
        f"""select m.building_id, m.serial as module_serial, m.input, l.latest
           from {channels} m
           cross join lateral (
               select max(p.ts) as latest from pulse_readings p
               where p.module_serial = m.serial and p.input = m.input
                     and p.ts >= m.t0 and p.ts >= $6 and p.ts <= $7
           ) l
           where l.latest is not null""",
        building_ids,
        serials,
        inputs,
        buildings,
        since,
        lowest,
        upper,
    )


async def earliest_anchors(
    db: Db,
    building_ids: Sequence[int],
    serials: Sequence[int],
    inputs: Sequence[int],
    buildings: Sequence[int],
    floors: Sequence[datetime],
    before: Sequence[datetime],
) -> list[Any]:
    """Per building, the oldest (``anchor``) of its channels' last registers in
    [floor, before) (channels: parallel lists, one row per channel; floors and before:
    parallel to ``buildings``), the floor for a channel without one."""
    channels = _CHANNELS_OF_BUILDINGS.format(
        columns="t0, t1", arrays="$5::timestamptz[], $6::timestamptz[]"
    )
    return await db.fetch(
        f"""select min(coalesce(a.anchor, m.t0)) as anchor, m.building_id
           from {channels} m
           cross join lateral (
               select max(p.ts) as anchor from pulse_readings p
               where p.module_serial = m.serial and p.input = m.input
                     and p.ts < m.t1 and p.ts >= m.t0
           ) a
           group by m.building_id""",
        building_ids,
        serials,
        inputs,
        buildings,
        floors,
        before,
    )


async def recent_registers(
    db: Db,
    building_ids: Sequence[int],
    serials: Sequence[int],
    inputs: Sequence[int],
    buildings: Sequence[int],
    since: Sequence[datetime],
    upper: datetime,
    limit: int,
) -> list[Any]:
    """Per channel (building, module, input: parallel lists), its newest ``limit`` registers
    stamped from its building's ``since`` (parallel to ``buildings``) up to ``upper``,
    newest first: one row per channel that has any, with its 0-based index in the lists
    and, as arrays, the stamps (microseconds since the epoch), whether each is on a whole
    hour, and the counts. One backward index scan per channel; ``upper`` and the least
    ``since`` bound the monthly partitions read (without an upper bound every empty future
    partition is probed for every channel)."""
    channels = _CHANNELS_OF_BUILDINGS.format(columns="since", arrays="$5::timestamptz[]")
    return await db.fetch(
        f"""select c.i - 1, array_agg(r.us order by r.us desc),
                  array_agg(r.whole order by r.us desc), array_agg(r.count order by r.us desc)
           from {channels} c
           cross join lateral (
               select (extract(epoch from p.ts) * 1000000)::bigint as us,
                      date_trunc('hour', p.ts) = p.ts as whole, p.count
               from pulse_readings p
               where p.module_serial = c.serial and p.input = c.input and p.ts >= c.since
                     and p.ts >= $6 and p.ts <= $7
               order by p.ts desc limit $8
           ) r
           group by c.i""",
        building_ids,
        serials,
        inputs,
        buildings,
        since,
        min(since),
        upper,
        limit,
    )


CEIL_HOUR = "date_trunc('hour', {0} + interval '1 hour' - interval '1 microsecond')"
# SQL: readings of alias {0} on channel m (m.serial, m.input) that count: whole hours, inside
# the channel period (m.vf, m.vt)
_CHANNEL = """{0}.module_serial = m.serial and {0}.input = m.input
                      and date_trunc('hour', {0}.ts) = {0}.ts
                      and (m.vf is null or {0}.ts > m.vf) and (m.vt is null or {0}.ts < m.vt)"""


async def hourly_register_arrays(
    db: Db,
    serials: Sequence[int],
    inputs: Sequence[int],
    windows: Sequence[int],
    starts: Sequence[datetime],
    inner_from: Sequence[datetime],
    inner_to: Sequence[datetime],
    ends: Sequence[datetime],
    periods: Sequence[ChannelPeriod] | None = None,
) -> list[Any]:
    """Registers on whole hours of many channels' windows: every register in [inner_from,
    inner_to], plus the nearest one on either side within [start, end]. The channels are
    parallel lists (``serials``, ``inputs``, ``periods``), each naming its window by its
    0-based index in the windows' parallel lists (``windows``): a window's bounds are sent
    once, not once per channel (encoding them was a tenth of a batch's time in Python). One
    row per channel: its 0-based index in the lists, the ``array_agg`` of hour offsets from
    its start and of counts. ``ts`` is also bounded by the union of the windows so
    PostgreSQL prunes the monthly partitions.

    With ``periods`` (one per channel: the meter's channel period), only readings inside
    the period count (strictly after ``valid_from``, strictly before ``valid_to``), and
    the counts an exchange record gives at its ends stand at the boundaries around the
    swap: ``count_at_start`` at the hour ``valid_from`` falls in, ``count_at_end`` at the
    first whole hour at or after ``valid_to`` (docs/provisioning.md, "Meter exchange").

    The inner range and the nearest register before it are one index range scan from that
    register, found by ``max(ts)`` over the two hours before the range first (the whole
    edge only when they hold none): as ``order by ts desc limit 1`` over the edge the
    planner read and sorted all its registers (~48 a channel), and its ``max`` too."""
    n = len(serials)
    periods = periods or [ChannelPeriod()] * n
    return await db.fetch(
        f"""select m.i - 1, array_agg((extract(epoch from r.ts - m.t0) / 3600)::bigint),
                  array_agg(r.count)
           from (select c.*, w.t0, w.a, w.b, w.t1
                 from unnest($1::bigint[], $2::smallint[], $3::int[], $9::timestamptz[],
                             $10::timestamptz[], $11::bigint[], $12::bigint[])
                      with ordinality as c(serial, input, k, vf, vt, c0, c1, i)
                 join unnest($4::timestamptz[], $5::timestamptz[], $6::timestamptz[],
                             $13::timestamptz[]) with ordinality as w(t0, a, b, t1, k)
                   on w.k = c.k + 1) m
           cross join lateral (
               (select p.ts, p.count from pulse_readings p
                where {_CHANNEL.format("p")} and p.ts <= m.b and p.ts >= $7 and p.ts <= $8
                      and p.ts >= coalesce(
                          (select max(q.ts) from pulse_readings q
                           where {_CHANNEL.format("q")} and q.ts < m.a and q.ts >= $7
                                 and q.ts >= greatest(m.t0, m.a - interval '2 hours')),
                          (select max(q.ts) from pulse_readings q
                           where {_CHANNEL.format("q")} and q.ts >= m.t0 and q.ts >= $7
                                 and q.ts < m.a - interval '2 hours'),
                          m.a))
               union all
               (select p.ts, p.count from pulse_readings p
                where {_CHANNEL.format("p")} and p.ts > m.b and p.ts <= m.t1 and p.ts <= $8
                order by p.ts limit 1)
               union all
               (select date_trunc('hour', m.vf), m.c0 where m.c0 is not null
                      and date_trunc('hour', m.vf) between m.t0 and m.t1)
               union all
               (select {CEIL_HOUR.format("m.vt")}, m.c1 where m.c1 is not null
                      and {CEIL_HOUR.format("m.vt")} between m.t0 and m.t1)
           ) r
           group by m.i""",
        serials,
        inputs,
        windows,
        starts,
        inner_from,
        inner_to,
        min(starts),
        max(ends),
        [p.valid_from for p in periods],
        [p.valid_to for p in periods],
        [p.count_at_start for p in periods],
        [p.count_at_end for p in periods],
        ends,
    )


async def hourly_temperature_arrays(
    db: Db, serials: Sequence[int], starts: Sequence[datetime], ends: Sequence[datetime]
) -> list[Any]:
    """Hourly means of many modules' windows (parallel lists, one row per module) stamped
    in (start, end] on whole hours. One row per module: its 0-based index in the lists,
    the ``array_agg`` of hour indexes in its window (0 for the hour after its start), of
    supply and of return temperatures (0.01 °C). Each module's rows are read through its
    index (``offset 0`` keeps the subquery apart): as a join, the newest hour, which the
    statistics never hold yet, was planned as one row and the month's partition scanned
    for every module."""
    return await db.fetch(
        """select m.i - 1, array_agg((extract(epoch from t.ts - m.t0) / 3600)::bigint - 1),
                  array_agg(t.supply_centi_c), array_agg(t.return_centi_c)
           from unnest($1::bigint[], $2::timestamptz[], $3::timestamptz[])
                with ordinality as m(serial, t0, t1, i)
           cross join lateral (
               select t.ts, t.supply_centi_c, t.return_centi_c from temperature_readings t
               where t.module_serial = m.serial and t.ts > m.t0 and t.ts <= m.t1
                     and t.ts > $4 and t.ts <= $5 and date_trunc('hour', t.ts) = t.ts
               offset 0
           ) t
           group by m.i""",
        serials,
        starts,
        ends,
        min(starts),
        max(ends),
    )


async def flat_meter_registers(db: Db, flat_id: int, start: datetime, end: datetime) -> list[Any]:
    """Every metered channel of the flat and of the risers of its radiators in service
    in [start, end): the meter (id, serial, utility, kind, unit, pulse_weight,
    ``register_offset``) with its counts at ``start`` and ``end`` (``at_start``,
    ``at_end``; None where none is stored), by meter id. A meter exchanged inside the
    range ends at its final count (``ended_at``), its successor starts at its start count
    (``started_at``); a register is ``register_offset + count * pulse_weight``."""
    return await db.fetch(
        """select m.id, m.serial, m.utility, m.kind, m.unit, m.pulse_weight, c.register_offset,
                  case when c.valid_from > $2 then c.valid_from end as started_at,
                  case when c.valid_to < $3 then c.valid_to end as ended_at,
                  case when c.valid_from >= $2 then c.count_at_start else
                  (select p.count from pulse_readings p where p.module_serial = c.module_serial
                     and p.input = c.input and p.ts = $2) end as at_start,
                  case when c.valid_to <= $3 then c.count_at_end else
                  (select p.count from pulse_readings p where p.module_serial = c.module_serial
                     and p.input = c.input and p.ts = $3) end as at_end
           from meters m join channels c on c.meter_id = m.id
           where (m.flat_id = $1
                  or m.riser_id in (select riser_id from radiators where flat_id = $1))
             and (c.valid_from is null or c.valid_from < $3)
             and (c.valid_to is null or c.valid_to > $2)
           order by m.id""",
        flat_id,
        start,
        end,
    )


# --- the one writer for producers of readings other than the persister ---


async def insert_readings(conn: asyncpg.Connection, rows: dict[str, list[tuple[Any, ...]]]) -> int:
    """Store readings idempotently (rows of each table in :data:`READING_COLUMNS` order):
    COPY into a temporary table, then ``INSERT ... ON CONFLICT DO NOTHING`` on each table's
    unique key, in one transaction; return the rows inserted. The simulator's fast path
    writes through this, so its rows land with the persister's meaning."""
    inserted = 0
    async with conn.transaction():
        for table, columns in READING_COLUMNS.items():
            records = rows.get(table, [])
            if not records:
                continue
            stage = f"stage_insert_{table}"
            await conn.execute(
                f"create temp table if not exists {stage} "
                f"(like {table} including defaults) on commit drop"
            )
            await conn.copy_records_to_table(stage, records=records, columns=columns)
            status = await conn.execute(
                f"insert into {table} ({', '.join(columns)}) "
                f"select {', '.join(columns)} from {stage} on conflict do nothing"
            )
            inserted += int(status.split()[-1])
            await conn.execute(f"truncate {stage}")
    return inserted
