"""Read stored buildings back as a :class:`WorldDocument` (``balans export``, and the
"before" side of every import's comparison). One query per collection, whatever the
number of buildings, so exporting a city costs a dozen queries."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

import asyncpg

from balans_db.provisioning.document import (
    AccountDoc,
    BuildingDoc,
    ChannelDoc,
    ConcentratorDoc,
    EntranceDoc,
    FlatDoc,
    MbusDoc,
    MeterDoc,
    ModuleDoc,
    RadiatorDoc,
    RiserDoc,
    SensorPairDoc,
    SiteDoc,
    WorldDocument,
)
from balans_db.provisioning.mbus import STORED_SQL as _MBUS
from balans_db.provisioning.mbus import VIRTUAL_SERIAL_BASE, medium_name

# standard M-Bus meters' virtual modules (and their channels and sensor pairs) follow from
# the meter's ``mbus`` address and are not parts of a document
_REAL = f"< {VIRTUAL_SERIAL_BASE}"

_BUILDINGS = """
select b.id, b.code, s.code as site, b.name, b.address, b.floors, b.layout, b.methodology,
       b.retired_on
from buildings b join sites s on s.id = b.site_id
where $1::text[] is null or b.code = any($1::text[])
order by b.id
"""
_SITES = """
select code, name, address, latitude, longitude, timezone, retired_on from sites
where id in (select site_id from buildings where id = any($1::int[])) order by id
"""
_ENTRANCES = """
select building_id, number from entrances where building_id = any($1::int[]) order by number
"""
_RISERS = """
select r.building_id, r.number, e.number as entrance
from risers r join entrances e on e.id = r.entrance_id
where r.building_id = any($1::int[]) order by r.number
"""
_FLATS = """
select f.building_id, f.number, e.number as entrance, f.floor, f.rooms, f.area_m2
from flats f join entrances e on e.id = f.entrance_id
where f.building_id = any($1::int[]) order by f.id
"""
_RADIATORS = """
select f.building_id, f.number as flat, r.number as riser, rd.sections
from radiators rd join flats f on f.id = rd.flat_id join risers r on r.id = rd.riser_id
where f.building_id = any($1::int[]) order by rd.id
"""
_ACCOUNTS = """
select coalesce(a.building_id, f.building_id) as building_id, a.number, f.number as flat,
       a.holder_name, a.residents, a.email, a.opened_on, a.closed_on
from accounts a left join flats f on f.id = a.flat_id
where coalesce(a.building_id, f.building_id) = any($1::int[]) order by a.id
"""
_CONCENTRATORS = """
select building_id, serial, model, installed_on from concentrators
where building_id = any($1::int[]) order by id
"""
_MODULES = f"""
select m.building_id, m.serial, c.serial as concentrator, m.subnet, m.model, m.floor,
       f.number as flat, r.number as riser, m.installed_on
from radio_modules m join concentrators c on c.id = m.concentrator_id
left join flats f on f.id = m.flat_id left join risers r on r.id = m.riser_id
where m.building_id = any($1::int[]) and m.serial {_REAL} order by m.id
"""
_METERS = f"""
select m.building_id, m.serial, m.utility, m.kind, m.role, f.number as flat,
       r.number as riser, m.pulse_weight, m.unit, m.pipe, m.accuracy_class, m.has_valve,
       m.installed_on, m.verified_on, m.verification_interval_years, ch.module_serial, ch.input,
       ch.valid_from, ch.valid_to,
       ch.count_at_start, ch.count_at_end, ch.register_offset
from meters m left join flats f on f.id = m.flat_id left join risers r on r.id = m.riser_id
left join channels ch on ch.meter_id = m.id and ch.module_serial {_REAL}
where m.building_id = any($1::int[]) order by m.id
"""
_PAIRS = f"""
select p.building_id, p.module_serial, p.position, f.number as flat, r.number as riser
from sensor_pairs p left join flats f on f.id = p.flat_id left join risers r on r.id = p.riser_id
where p.building_id = any($1::int[]) and p.module_serial {_REAL} order by p.id
"""


def _by_building(rows: list[Any]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = defaultdict(list)
    for r in rows:
        out[r["building_id"]].append(r)
    return out


def _fields(row: Any, *names: str) -> dict[str, Any]:
    return {n: row[n] for n in names}


async def fetch_stored(
    conn: asyncpg.Connection, building_codes: list[str] | None
) -> tuple[list[Any], list[Any], dict[str, dict[int, list[Any]]]]:
    """The stored rows of the buildings named (all when None): buildings, their sites,
    and per collection the rows by building id."""
    buildings = await conn.fetch(_BUILDINGS, building_codes)
    ids = [b["id"] for b in buildings]
    sites = await conn.fetch(_SITES, ids)
    parts = {
        name: _by_building(await conn.fetch(sql, ids))
        for name, sql in (
            ("entrances", _ENTRANCES),
            ("risers", _RISERS),
            ("flats", _FLATS),
            ("radiators", _RADIATORS),
            ("accounts", _ACCOUNTS),
            ("concentrators", _CONCENTRATORS),
            ("modules", _MODULES),
            ("meters", _METERS),
            ("pairs", _PAIRS),
            ("mbus", _MBUS),
        )
    }
    return buildings, sites, parts


def methodology_of(value: Any) -> dict[str, Any]:
    """A jsonb column as asyncpg returns it: decoded where a codec is set, else text."""
    decoded: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return decoded


async def export_document(
    conn: asyncpg.Connection, building_codes: list[str] | None = None
) -> WorldDocument:
    """The stored buildings named by ``building_codes`` (all when None) and their sites."""
    buildings, sites, parts = await fetch_stored(conn, building_codes)
    out: list[BuildingDoc] = []
    for b in buildings:
        bid = b["id"]
        mbus = {r["serial"]: r for r in parts["mbus"].get(bid, [])}
        radiators: dict[str, list[RadiatorDoc]] = defaultdict(list)
        for r in parts["radiators"].get(bid, []):
            radiators[r["flat"]].append(RadiatorDoc(riser=r["riser"], sections=r["sections"]))
        out.append(
            BuildingDoc.model_construct(
                **_fields(b, "code", "site", "name", "address", "floors", "layout", "retired_on"),
                methodology=methodology_of(b["methodology"]),
                entrances=[
                    EntranceDoc.model_construct(number=r["number"])
                    for r in parts["entrances"].get(bid, [])
                ],
                risers=[
                    RiserDoc.model_construct(**_fields(r, "number", "entrance"))
                    for r in parts["risers"].get(bid, [])
                ],
                flats=[
                    FlatDoc.model_construct(
                        **_fields(r, "number", "entrance", "floor", "rooms", "area_m2"),
                        radiators=radiators.get(r["number"], []),
                    )
                    for r in parts["flats"].get(bid, [])
                ],
                accounts=[
                    AccountDoc.model_construct(
                        **_fields(
                            r,
                            "number",
                            "flat",
                            "holder_name",
                            "residents",
                            "email",
                            "opened_on",
                            "closed_on",
                        )
                    )
                    for r in parts["accounts"].get(bid, [])
                ],
                concentrators=[
                    ConcentratorDoc.model_construct(**_fields(r, "serial", "model", "installed_on"))
                    for r in parts["concentrators"].get(bid, [])
                ],
                modules=[
                    ModuleDoc.model_construct(
                        **_fields(
                            r,
                            "serial",
                            "concentrator",
                            "subnet",
                            "model",
                            "floor",
                            "flat",
                            "riser",
                            "installed_on",
                        )
                    )
                    for r in parts["modules"].get(bid, [])
                ],
                meters=[_meter(r, mbus.get(r["serial"])) for r in parts["meters"].get(bid, [])],
                sensor_pairs=[
                    SensorPairDoc.model_construct(
                        module=r["module_serial"],
                        position=r["position"],
                        flat=r["flat"],
                        riser=r["riser"],
                    )
                    for r in parts["pairs"].get(bid, [])
                ],
            )
        )
    return WorldDocument.model_construct(
        format="balans.world/1",
        sites=[SiteDoc.model_construct(**dict(s)) for s in sites],
        buildings=out,
    )


CHANNEL_PERIOD = ("valid_from", "valid_to", "count_at_start", "count_at_end", "register_offset")


def channel_values(channel: ChannelDoc) -> tuple[Any, ...]:
    """A channel's stored values (module, input and its period), a missing offset as 0."""
    return (
        channel.module,
        channel.input,
        channel.valid_from,
        channel.valid_to,
        channel.count_at_start,
        channel.count_at_end,
        channel.register_offset or Decimal(0),
    )


def stored_channel_values(r: Any) -> tuple[Any, ...]:
    """:func:`channel_values` of a stored meter row (``_METERS``)."""
    return (r["module_serial"], r["input"], *(r[c] for c in CHANNEL_PERIOD))


def _meter(r: Any, mbus: Any) -> MeterDoc:
    channel = (
        ChannelDoc.model_construct(
            module=r["module_serial"],
            input=r["input"],
            **{c: r[c] for c in CHANNEL_PERIOD[:-1]},
            register_offset=r["register_offset"] or None,
        )
        if r["module_serial"] is not None
        else None
    )
    return MeterDoc.model_construct(
        **_fields(
            r,
            "serial",
            "utility",
            "kind",
            "role",
            "flat",
            "riser",
            "pulse_weight",
            "unit",
            "pipe",
            "accuracy_class",
            "has_valve",
            "installed_on",
            "verified_on",
            "verification_interval_years",
        ),
        channel=channel,
        mbus=None
        if mbus is None
        else MbusDoc.model_construct(
            manufacturer=mbus["manufacturer"],
            id=mbus["device_id"],
            version=mbus["version"],
            medium=medium_name(mbus["medium"]),
            key=None,  # write-only
        ),
    )
