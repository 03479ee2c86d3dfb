"""What the world's owner (the api's provisioning part) publishes: sites, buildings,
flats, accounts and the equipment (tables in :mod:`balans_db.tables.world`)."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from balans_core.verification import verification_intervals
from balans_db.queries import Db


async def site_timezone(db: Db, building_id: int) -> str | None:
    """The IANA time zone of the building's site (None if there is no such building)."""
    tz = await db.fetchval(
        "select s.timezone from buildings b join sites s on s.id = b.site_id where b.id = $1",
        building_id,
    )
    return str(tz) if tz is not None else None


# --- buildings with their equipment, many at once (allocation) ---


async def buildings_by_id(db: Db, building_ids: list[int]) -> list[Any]:
    """id, layout and methodology (jsonb) of the buildings among ``building_ids``."""
    return await db.fetch(
        "select id, layout, methodology from buildings where id = any($1::int[])", building_ids
    )


async def building_layouts(db: Db) -> dict[int, str]:
    """building id -> piping layout, of every building."""
    return {r["id"]: r["layout"] for r in await db.fetch("select id, layout from buildings")}


async def meters_per_building(db: Db) -> dict[int, int]:
    """building id -> how many meters it has (every building with any): what allocation
    weighs a building it has not measured by (a weighted split of the event partitions,
    balans_core.costs)."""
    rows = await db.fetch("select building_id, count(*) as n from meters group by building_id")
    return {r["building_id"]: r["n"] for r in rows}


async def flats_of(db: Db, building_ids: list[int]) -> list[Any]:
    """building_id, id, area_m2 of their flats, by building then flat id."""
    return await db.fetch(
        """select building_id, id, area_m2 from flats where building_id = any($1::int[])
           order by building_id, id""",
        building_ids,
    )


async def flat_floors(db: Db, building_id: int) -> dict[int, int]:
    """The floor of each flat of a building (flat id -> floor; a single-pipe riser's water
    runs from the top floor down)."""
    rows = await db.fetch("select id, floor from flats where building_id = $1", building_id)
    return {r["id"]: r["floor"] for r in rows if r["floor"] is not None}


async def metered_channels_of(
    db: Db, building_ids: list[int], intervals: dict[str, int] | None = None
) -> list[Any]:
    """Every meter on a channel in these buildings: building_id, id, utility, kind, role,
    pulse_weight, unit, pipe, flat_id, riser_id, module_serial, input, its channel
    period (valid_from, valid_to, count_at_start, count_at_end) and the day its
    verification expires (``verification_due_on``, with ``intervals`` per utility, default
    the process's); by building, meter."""
    return await db.fetch(
        f"""select m.building_id, m.id, m.utility, m.kind, m.role, m.pulse_weight, m.unit,
                  m.pipe, m.flat_id, m.riser_id, c.module_serial, c.input,
                  c.valid_from, c.valid_to, c.count_at_start, c.count_at_end,
                  {VERIFICATION_DUE_ON} as verification_due_on
           from meters m join channels c on c.meter_id = m.id
           where m.building_id = any($1::int[]) order by m.building_id, m.id""",
        building_ids,
        json.dumps(intervals or verification_intervals()),
    )


# SQL: the day meter ``m``'s verification expires, with $2 the intervals per utility (JSON)
VERIFICATION_DUE_ON = """(coalesce(m.verified_on, m.installed_on) + make_interval(years =>
  coalesce(m.verification_interval_years, ($2::text::jsonb ->> m.utility)::int)))::date"""


async def sensor_pairs_of(db: Db, building_ids: list[int]) -> list[Any]:
    """building_id, module_serial, position, flat_id, riser_id, radiator_id of their
    sensor pairs, by building then module."""
    return await db.fetch(
        """select building_id, module_serial, position, flat_id, riser_id, radiator_id
           from sensor_pairs where building_id = any($1::int[])
           order by building_id, module_serial""",
        building_ids,
    )


async def riser_radiators_of(db: Db, building_ids: list[int]) -> list[Any]:
    """building_id, flat_id, riser_id, sections of their radiators on a riser, by building
    then radiator id."""
    return await db.fetch(
        """select f.building_id, r.flat_id, r.riser_id, r.sections from radiators r
           join flats f on f.id = r.flat_id
           where f.building_id = any($1::int[]) and r.riser_id is not null
           order by f.building_id, r.id""",
        building_ids,
    )


async def flat_in_building(db: Db, flat_id: int) -> Any:
    """The flat (id, number, area_m2, building_id) with its building's layout,
    methodology and total flat area (b_area); None if there is no such flat."""
    return await db.fetchrow(
        """select f.id, f.number, f.area_m2, f.building_id, b.layout, b.methodology,
                  (select sum(area_m2) from flats where building_id = f.building_id) as b_area
           from flats f join buildings b on b.id = f.building_id where f.id = $1""",
        flat_id,
    )


# --- accounts and metering points (billing) ---


async def building_accounts(db: Db, building_id: int) -> list[Any]:
    """The building's flat accounts (id, number, flat_id, residents, opened_on, closed_on)
    with their flat's area_m2, by account id (the owner account: :func:`owner_account`)."""
    return await db.fetch(
        """select a.id, a.number, a.flat_id, a.residents, a.opened_on, a.closed_on, f.area_m2
           from accounts a join flats f on f.id = a.flat_id
           where f.building_id = $1 order by a.id""",
        building_id,
    )


async def owner_account(db: Db, building_id: int) -> Any:
    """The building's owner account (id, number, holder_name), billed for vacant flats;
    None when the building has none."""
    return await db.fetchrow(
        "select id, number, holder_name from accounts where building_id = $1", building_id
    )


async def metering_points(db: Db, building_id: int) -> dict[tuple[int, str], int]:
    """(flat id, utility) -> metering points: the flat's own meters in service (one
    replaced in an exchange no longer counts), plus for heat its sensor pairs on modules
    without a heat meter (the radiator distributors of 2a)."""
    rows = await db.fetch(
        """select flat_id, utility, count(*) as points from meters mt
           where building_id = $1 and role = 'flat' and flat_id is not null
             and not exists (select 1 from channels c
                             where c.meter_id = mt.id and c.valid_to is not null)
           group by flat_id, utility
           union all
           select sp.flat_id, 'heat', count(*) from sensor_pairs sp
           where sp.building_id = $1 and sp.position = 'flat' and sp.flat_id is not null
             and not exists (
               select 1 from channels c join meters m on m.id = c.meter_id
               where c.module_serial = sp.module_serial and m.utility = 'heat')
           group by sp.flat_id""",
        building_id,
    )
    points: dict[tuple[int, str], int] = {}
    for r in rows:
        key = (r["flat_id"], r["utility"])
        points[key] = points.get(key, 0) + r["points"]
    return points


async def account_address(db: Db, account_id: int) -> Any:
    """The account's number, holder_name, opened_on and closed_on, its flat_id and
    flat_number (null for a building's owner account), the building's name and address
    and the site's timezone; None if there is no such account."""
    return await db.fetchrow(
        """select a.number, a.holder_name, a.opened_on, a.closed_on, a.flat_id,
                  f.number as flat_number, b.name, b.address, s.timezone
           from accounts a left join flats f on f.id = a.flat_id
           join buildings b on b.id = coalesce(a.building_id, f.building_id)
           join sites s on s.id = b.site_id
           where a.id = $1""",
        account_id,
    )


# --- a building's meters and modules (balance) ---


async def building_site(db: Db, building_id: int) -> Any:
    """The building's site: id and timezone; None if there is no such building."""
    return await db.fetchrow(
        """select s.id, s.timezone from buildings b join sites s on s.id = b.site_id
           where b.id = $1""",
        building_id,
    )


async def building_code(db: Db, building_id: int) -> str | None:
    """The building's code; None if there is no such building."""
    code = await db.fetchval("select code from buildings where id = $1", building_id)
    return str(code) if code is not None else None


async def meters_by_id(db: Db, meter_ids: list[int]) -> list[Any]:
    """id, building_id, utility, unit and pulse_weight of the meters that exist among
    ``meter_ids``."""
    return await db.fetch(
        """select id, building_id, utility, unit, pulse_weight from meters
           where id = any($1::int[])""",
        meter_ids,
    )


async def building_meters(db: Db, building_id: int) -> list[Any]:
    """Every meter of the building (id, serial, unit, utility, role, flat_id, riser_id,
    pulse_weight) with the module_serial of its channel (None without one), by id."""
    return await db.fetch(
        """select m.id, m.serial, m.unit, m.utility, m.role, m.flat_id, m.riser_id,
                  m.pulse_weight, c.module_serial
           from meters m left join channels c on c.meter_id = m.id
           where m.building_id = $1 order by m.id""",
        building_id,
    )


async def building_balance_meters(db: Db, building_id: int) -> list[Any]:
    """The building's building-role meter of each utility (id, utility; the lowest id)."""
    return await db.fetch(
        """select distinct on (utility) id, utility from meters
           where building_id = $1 and role = 'building' order by utility, id""",
        building_id,
    )


async def subscriber_meters(db: Db, building_id: int, utility: str) -> list[Any]:
    """The building's flat and riser meters of ``utility`` (id, role) with the entrance
    they are in (entrance_id, entrance_no) and their riser's number (riser_no), by id."""
    return await db.fetch(
        """select m.id, m.role, coalesce(f.entrance_id, r.entrance_id) entrance_id,
                  e.number entrance_no, r.number riser_no
           from meters m
           left join flats f on f.id = m.flat_id
           left join risers r on r.id = m.riser_id
           left join entrances e on e.id = coalesce(f.entrance_id, r.entrance_id)
           where m.building_id = $1 and m.utility = $2 and m.role in ('flat', 'riser')
           order by m.id""",
        building_id,
        utility,
    )


async def building_modules(db: Db, building_id: int) -> list[Any]:
    """The building's radio modules (serial, installed_on) with their concentrator's
    serial (concentrator), by serial."""
    return await db.fetch(
        """select m.serial, m.installed_on, c.serial concentrator from radio_modules m
           join concentrators c on c.id = m.concentrator_id
           where m.building_id = $1 order by m.serial""",
        building_id,
    )


async def building_channels(db: Db, building_id: int) -> list[Any]:
    """The channels of the building's meters: meter_id, module_serial, input, and the
    period the meter is on it (valid_from, valid_to; None: since always / still)."""
    return await db.fetch(
        """select c.meter_id, c.module_serial, c.input, c.valid_from, c.valid_to from channels c
           join meters m on m.id = c.meter_id where m.building_id = $1""",
        building_id,
    )


# --- concentrators and modules (ingest, the simulator) ---


async def concentrator(db: Db, serial: int) -> Any:
    """The concentrator's building_id, sealed key_ciphertext, and after a key rotation the
    sealed previous_key_ciphertext with previous_key_until (the end of the overlap, when
    the old key stops working); None if not registered or its building is retired."""
    return await db.fetchrow(
        """select c.building_id, c.key_ciphertext, c.previous_key_ciphertext,
                  c.previous_key_until
           from concentrators c join buildings b on b.id = c.building_id
           where c.serial = $1 and (b.retired_on is null or b.retired_on > current_date)""",
        serial,
    )


async def concentrator_ciphertexts(db: Db, serials: list[int]) -> list[Any]:
    """serial and sealed key_ciphertext of the registered concentrators among ``serials``."""
    return await db.fetch(
        "select serial, key_ciphertext from concentrators where serial = any($1::bigint[])",
        serials,
    )


async def module_serials_of(db: Db, building_ids: list[int]) -> dict[int, frozenset[int]]:
    """The serials of the radio modules registered to each of the buildings, in one query
    (a building without modules is absent)."""
    rows = await db.fetch(
        "select building_id, array_agg(serial) as serials from radio_modules "
        "where building_id = any($1::int[]) group by building_id",
        building_ids,
    )
    return {r["building_id"]: frozenset(r["serials"]) for r in rows}


async def building_ids_by_code(db: Db, codes: list[str]) -> list[Any]:
    """id and code of the buildings among ``codes``."""
    return await db.fetch("select id, code from buildings where code = any($1::text[])", codes)


# --- verification (calibration) of meters ---


async def verification_due(
    db: Db, until: date, intervals: dict[str, int], building_id: int | None = None
) -> list[Any]:
    """Meters whose verification expires before ``until`` (expired ones included), soonest
    first (then by id): id, serial, utility, building_id, building (code), flat (number),
    verified_on (or installed_on when never verified), interval_years (the meter's own,
    else its utility's in ``intervals``) and due_on."""
    return await db.fetch(
        """select * from (
             select m.id, m.serial, m.utility, m.building_id, b.code as building,
                    f.number as flat, coalesce(m.verified_on, m.installed_on) as verified_on,
                    i.years as interval_years,
                    (coalesce(m.verified_on, m.installed_on)
                       + make_interval(years => i.years))::date as due_on
             from meters m join buildings b on b.id = m.building_id
             left join flats f on f.id = m.flat_id
             cross join lateral (select coalesce(m.verification_interval_years,
                                 ($2::text::jsonb ->> m.utility)::int) as years) i
             where b.retired_on is null and ($3::int is null or m.building_id = $3)
           ) d
           where due_on < $1 order by due_on, id""",
        until,
        json.dumps(intervals),
        building_id,
    )


async def verification_due_of(
    db: Db, meter_ids: list[int], intervals: dict[str, int] | None = None
) -> dict[int, Any]:
    """meter id -> the day its verification expires (``intervals`` per utility, default
    the process's)."""
    rows = await db.fetch(
        f"""select m.id, {VERIFICATION_DUE_ON} as due_on from meters m
            where m.id = any($1::int[])""",
        meter_ids,
        json.dumps(intervals or verification_intervals()),
    )
    return {r["id"]: r["due_on"] for r in rows}
