"""Write :class:`Changes` to the world tables: set-based statements (``unnest`` of column
arrays, natural keys joined to ids in SQL), so a city of 100 000 meters takes a few dozen
statements, not 100 000. The caller holds the transaction."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from balans_db.provisioning import mbus
from balans_db.provisioning.changes import ENTITIES, Changes
from balans_db.secrets import KeyVault

CHUNK = 20_000  # rows per statement: bounds memory and gives the progress bar steps

Progress = Callable[[int], None]  # rows just written

_UPSERT: dict[str, str] = {
    "sites": """
insert into sites (code, name, address, latitude, longitude, timezone, retired_on)
select x.code, x.name, x.address, x.latitude, x.longitude, x.timezone, x.retired_on
from unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::text[],
            $7::date[])
  with ordinality as x(code, name, address, latitude, longitude, timezone, retired_on, ord)
order by x.ord
on conflict (code) do update set name = excluded.name, address = excluded.address,
  latitude = excluded.latitude, longitude = excluded.longitude, timezone = excluded.timezone,
  retired_on = excluded.retired_on""",
    "buildings": """
insert into buildings (site_id, code, name, address, floors, layout, methodology, retired_on)
select s.id, x.code, x.name, x.address, x.floors, x.layout, x.methodology::jsonb, x.retired_on
from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
            $8::date[])
  with ordinality as x(code, site, name, address, floors, layout, methodology, retired_on, ord)
join sites s on s.code = x.site
order by x.ord
on conflict (code) do update set site_id = excluded.site_id, name = excluded.name,
  address = excluded.address, floors = excluded.floors, layout = excluded.layout,
  methodology = excluded.methodology, retired_on = excluded.retired_on""",
    "entrances": """
insert into entrances (building_id, number)
select b.id, x.number from unnest($1::text[], $2::int[]) with ordinality as x(code, number, ord)
join buildings b on b.code = x.code
order by x.ord
on conflict (building_id, number) do nothing""",
    "risers": """
insert into risers (building_id, entrance_id, number)
select b.id, e.id, x.number
from unnest($1::text[], $2::int[], $3::int[]) with ordinality as x(code, number, entrance, ord)
join buildings b on b.code = x.code
join entrances e on e.building_id = b.id and e.number = x.entrance
order by x.ord
on conflict (building_id, number) do update set entrance_id = excluded.entrance_id""",
    "flats": """
insert into flats (building_id, entrance_id, number, floor, rooms, area_m2)
select b.id, e.id, x.number, x.floor, x.rooms, x.area
from unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::numeric[]) with ordinality
  as x(code, number, entrance, floor, rooms, area, ord)
join buildings b on b.code = x.code
join entrances e on e.building_id = b.id and e.number = x.entrance
order by x.ord
on conflict (building_id, number) do update set entrance_id = excluded.entrance_id,
  floor = excluded.floor, rooms = excluded.rooms, area_m2 = excluded.area_m2""",
    "radiators": """
insert into radiators (flat_id, riser_id, sections)
select f.id, r.id, x.sections
from unnest($1::text[], $2::text[], $3::int[], $4::int[])
  with ordinality as x(code, flat, riser, sections, ord)
join buildings b on b.code = x.code
join flats f on f.building_id = b.id and f.number = x.flat
join risers r on r.building_id = b.id and r.number = x.riser
order by x.ord
on conflict (flat_id, riser_id) do update set sections = excluded.sections""",
    "accounts": """
insert into accounts (number, flat_id, building_id, holder_name, residents, opened_on, email,
                      closed_on)
select x.number, f.id, case when x.flat is null then b.id end, x.holder, x.residents,
       x.opened_on, x.email, x.closed_on
from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::date[], $7::text[],
            $8::date[])
  with ordinality
  as x(number, code, flat, holder, residents, opened_on, email, closed_on, ord)
join buildings b on b.code = x.code
left join flats f on f.building_id = b.id and f.number = x.flat
order by x.ord
on conflict (number) do update set flat_id = excluded.flat_id,
  building_id = excluded.building_id, holder_name = excluded.holder_name,
  residents = excluded.residents, opened_on = excluded.opened_on, email = excluded.email,
  closed_on = excluded.closed_on""",
    "concentrators": """
update concentrators c set building_id = b.id, model = x.model,
  installed_on = coalesce(x.installed_on, c.installed_on)
from unnest($1::bigint[], $2::text[], $3::date[], $4::text[])
  as x(serial, code, installed_on, model)
join buildings b on b.code = x.code
where c.serial = x.serial""",
    "modules": """
insert into radio_modules
  (serial, concentrator_id, subnet, model, building_id, flat_id, riser_id, floor, installed_on)
select x.serial, c.id, x.subnet, x.model, b.id, f.id, r.id, x.floor,
       coalesce(x.installed_on, current_date)
from unnest($1::bigint[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::int[],
            $7::text[], $8::date[], $9::int[]) with ordinality
  as x(serial, code, concentrator, subnet, model, floor, flat, installed_on, riser, ord)
join buildings b on b.code = x.code
join concentrators c on c.serial = x.concentrator
left join flats f on f.building_id = b.id and f.number = x.flat
left join risers r on r.building_id = b.id and r.number = x.riser
order by x.ord
on conflict (serial) do update set concentrator_id = excluded.concentrator_id,
  subnet = excluded.subnet, model = excluded.model, building_id = excluded.building_id,
  flat_id = excluded.flat_id, riser_id = excluded.riser_id, floor = excluded.floor,
  installed_on = excluded.installed_on""",
    "meters": """
insert into meters (serial, building_id, utility, kind, role, flat_id, riser_id, pulse_weight,
                    unit, pipe, accuracy_class, installed_on, has_valve, verified_on,
                    verification_interval_years)
select x.serial, b.id, x.utility, x.kind, x.role, f.id, r.id, x.pulse_weight, x.unit, x.pipe,
       x.accuracy_class, coalesce(x.installed_on, current_date), x.has_valve, x.verified_on,
       x.interval_years
from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
            $8::numeric[], $9::text[], $10::text[], $11::text[], $12::date[], $13::bool[],
            $14::date[], $15::int[]) with ordinality
  as x(serial, code, utility, kind, role, flat, riser, pulse_weight, unit, pipe,
       accuracy_class, installed_on, has_valve, verified_on, interval_years, ord)
join buildings b on b.code = x.code
left join flats f on f.building_id = b.id and f.number = x.flat
left join risers r on r.building_id = b.id and r.number = x.riser
order by x.ord
on conflict (serial) do update set building_id = excluded.building_id,
  utility = excluded.utility, kind = excluded.kind, role = excluded.role,
  flat_id = excluded.flat_id, riser_id = excluded.riser_id,
  pulse_weight = excluded.pulse_weight, unit = excluded.unit, pipe = excluded.pipe,
  accuracy_class = excluded.accuracy_class, installed_on = excluded.installed_on,
  has_valve = excluded.has_valve, verified_on = excluded.verified_on,
  verification_interval_years = excluded.verification_interval_years""",
    "channels": """
insert into channels (meter_id, module_serial, input, valid_from, valid_to, count_at_start,
                      count_at_end, register_offset)
select m.id, x.module, x.input, x.valid_from, x.valid_to, x.count_at_start, x.count_at_end,
       x.register_offset
from unnest($1::text[], $2::text[], $3::bigint[], $4::int[], $5::timestamptz[],
            $6::timestamptz[], $7::bigint[], $8::bigint[], $9::numeric[])
  with ordinality as x(serial, code, module, input, valid_from, valid_to, count_at_start,
                       count_at_end, register_offset, ord)
join meters m on m.serial = x.serial
order by x.ord""",
    "sensor_pairs": """
insert into sensor_pairs (module_serial, position, building_id, flat_id, riser_id, radiator_id)
select x.module, x.position, b.id, f.id, r.id, rd.id
from unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[]) with ordinality
  as x(module, code, position, flat, riser, ord)
join buildings b on b.code = x.code
left join flats f on f.building_id = b.id and f.number = x.flat
left join risers r on r.building_id = b.id and r.number = x.riser
left join radiators rd on rd.flat_id = f.id and rd.riser_id = r.id
order by x.ord
on conflict (module_serial) do update set position = excluded.position,
  building_id = excluded.building_id, flat_id = excluded.flat_id,
  riser_id = excluded.riser_id, radiator_id = excluded.radiator_id""",
}

_NEW_CONCENTRATORS = """
insert into concentrators (serial, building_id, installed_on, model, key_ciphertext)
select x.serial, b.id, coalesce(x.installed_on, current_date), x.model, x.sealed
from unnest($1::bigint[], $2::text[], $3::date[], $4::text[], $5::bytea[]) with ordinality
  as x(serial, code, installed_on, model, sealed, ord)
join buildings b on b.code = x.code
order by x.ord"""


def _by_building_key(table: str, alias: str, number_type: str) -> str:
    return f"""
delete from {table} {alias} using buildings b,
  unnest($1::text[], $2::{number_type}[]) as x(code, number)
where {alias}.building_id = b.id and b.code = x.code and {alias}.number = x.number"""


_DELETE: dict[str, str] = {
    "mbus_meters": mbus.DELETE_SQL,
    "sensor_pairs": "delete from sensor_pairs where module_serial = any($1::bigint[])",
    "channels": """delete from channels c using meters m
                   where m.id = c.meter_id and m.serial = any($1::text[])""",
    "meters": "delete from meters where serial = any($1::text[])",
    "modules": "delete from radio_modules where serial = any($1::bigint[])",
    "concentrators": "delete from concentrators where serial = any($1::bigint[])",
    "accounts": "delete from accounts where number = any($1::text[])",
    "radiators": """
delete from radiators rd using flats f, risers r, buildings b,
  unnest($1::text[], $2::text[], $3::int[]) as x(code, flat, riser)
where rd.flat_id = f.id and rd.riser_id = r.id and f.building_id = b.id and b.code = x.code
  and f.number = x.flat and r.number = x.riser""",
    "flats": _by_building_key("flats", "f", "text"),
    "risers": _by_building_key("risers", "r", "int"),
    "entrances": _by_building_key("entrances", "e", "int"),
}


def _columns(rows: Sequence[tuple[Any, tuple[Any, ...]]]) -> list[list[Any]]:
    """[(key, values)] -> one list per column: the key's parts, then the values."""
    flat = [(*(k if isinstance(k, tuple) else (k,)), *v) for k, v in rows]
    return [list(col) for col in zip(*flat, strict=True)]


def _key_columns(keys: Sequence[Any]) -> list[list[Any]]:
    flat = [k if isinstance(k, tuple) else (k,) for k in keys]
    return [list(col) for col in zip(*flat, strict=True)]


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def total_rows(changes: Changes) -> int:
    """Rows :func:`apply_changes` writes (its progress runs up to this)."""
    return sum(
        len(changes.create[e]) + len(changes.update[e]) + len(changes.delete[e]) for e in ENTITIES
    ) + len(changes.update["channels"])


async def apply_changes(
    conn: asyncpg.Connection,
    changes: Changes,
    vault: KeyVault,
    progress: Progress = lambda n: None,
) -> dict[int, bytes]:
    """Write ``changes``; return the device key of each new concentrator (serial -> key),
    generated here and stored only sealed: the caller shows it once."""
    for e in reversed(ENTITIES):
        doomed = list(changes.delete[e])
        if e == "channels":  # a re-wired meter loses its old channel first
            doomed += list(changes.update[e])
        for chunk in _chunks(doomed):
            await conn.execute(_DELETE[e], *_key_columns(chunk))
            progress(len(chunk))
    keys: dict[int, bytes] = {}
    for e in ENTITIES:
        if e == "concentrators":
            keys = await _write_concentrators(conn, changes, vault, progress)
            continue
        if e == "mbus_meters":  # virtual modules and sealed keys: one meter at a time
            await mbus.write_rows(conn, changes.create[e] | changes.update[e], vault)
            progress(len(changes.create[e]) + len(changes.update[e]))
            continue
        rows = list(changes.create[e].items()) + list(changes.update[e].items())
        for chunk in _chunks(rows):
            await conn.execute(_UPSERT[e], *_columns(chunk))
            progress(len(chunk))
    return keys


async def _write_concentrators(
    conn: asyncpg.Connection, changes: Changes, vault: KeyVault, progress: Progress
) -> dict[int, bytes]:
    rows = list(changes.create["concentrators"].items()) + list(
        changes.update["concentrators"].items()
    )
    if not rows:
        return {}
    stored = {
        r["serial"]
        for r in await conn.fetch(
            "select serial from concentrators where serial = any($1::bigint[])",
            [k for k, _ in rows],
        )
    }
    moved = [r for r in rows if r[0] in stored]
    new = [r for r in rows if r[0] not in stored]
    if moved:
        await conn.execute(_UPSERT["concentrators"], *_columns(moved))
    keys = {serial: os.urandom(32) for serial, _ in new}
    if new:
        sealed = [vault.seal(keys[serial], context=str(serial).encode()) for serial, _ in new]
        await conn.execute(_NEW_CONCENTRATORS, *_columns(new), sealed)
    progress(len(rows))
    return keys
