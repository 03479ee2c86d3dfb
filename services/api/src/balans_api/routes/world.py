"""The world model: sites, buildings, entrances, risers, flats, accounts and meters.

Consumers see their own flat, its account and meters, and the building it is in."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.models import (
    AccountPublic,
    BuildingPublic,
    EntrancePublic,
    FlatPublic,
    MeterPublic,
    RiserPublic,
    SitePublic,
)
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.visibility import (
    METER_COLUMNS,
    METER_FROM,
    VACANT,
    check_building,
    check_flat,
    visible_meter,
)

router = APIRouter(tags=["world"], responses=ERROR_RESPONSES)

_SITES = "select id, code, name, address, latitude, longitude, timezone from sites"
_BUILDINGS = """select id, site_id, code, name, address, floors, layout, methodology,
(select timezone from sites s where s.id = buildings.site_id) as timezone from buildings"""
_ENTRANCES = "select id, building_id, number from entrances"
_RISERS = "select id, building_id, entrance_id, number from risers"
_FLATS = f"select id, building_id, entrance_id, number, floor, rooms, area_m2, {VACANT} from flats"
_ACCOUNTS = """select id, number, holder_name, flat_id, building_id, residents, email, opened_on,
closed_on from accounts"""

BuildingId = Annotated[int | None, Query(description="Only this building's items.")]


@router.get("/sites", response_model=Page[SitePublic])
async def list_sites(pool: Pool, who: Reader, cursor: Cursor = None, limit: Limit = 100) -> Page:
    """Sites (groups of buildings at one place) with coordinates for the map."""
    where = Where().add(
        "id in (select site_id from buildings where id = any({}))", who.building_filter()
    )
    rows, nxt = await fetch_page(pool, _SITES, where, cursor, limit)
    return Page(items=[SitePublic(**r) for r in rows], next_cursor=nxt)


@router.get("/buildings", response_model=Page[BuildingPublic])
async def list_buildings(
    pool: Pool,
    who: Reader,
    site_id: int | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Buildings with their piping layout and allocation methodology."""
    where = Where().add("site_id = {}", site_id).add("id = any({})", who.building_filter())
    rows, nxt = await fetch_page(pool, _BUILDINGS, where, cursor, limit)
    return Page(items=[BuildingPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/buildings/{building_id}", response_model=BuildingPublic)
async def get_building(building_id: int, pool: Pool, who: Reader) -> BuildingPublic:
    """One building."""
    check_building(who, building_id)
    row = await pool.fetchrow(f"{_BUILDINGS} where id = $1", building_id)
    if row is None:
        raise not_found("building")
    return BuildingPublic(**row)


@router.get("/buildings/{building_id}/entrances", response_model=Page[EntrancePublic])
async def list_entrances(
    building_id: int, pool: Pool, who: Reader, cursor: Cursor = None, limit: Limit = 100
) -> Page[EntrancePublic]:
    """The building's entrances (staircases)."""
    check_building(who, building_id)
    where = Where().add("building_id = {}", building_id)
    rows, nxt = await fetch_page(pool, _ENTRANCES, where, cursor, limit)
    return Page(items=[EntrancePublic(**r) for r in rows], next_cursor=nxt)


@router.get("/buildings/{building_id}/risers", response_model=Page[RiserPublic])
async def list_risers(
    building_id: int, pool: Pool, who: Reader, cursor: Cursor = None, limit: Limit = 100
) -> Page[RiserPublic]:
    """The building's heating risers."""
    check_building(who, building_id)
    where = Where().add("building_id = {}", building_id)
    rows, nxt = await fetch_page(pool, _RISERS, where, cursor, limit)
    return Page(items=[RiserPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/flats", response_model=Page[FlatPublic])
async def list_flats(
    pool: Pool,
    who: Reader,
    building_id: BuildingId = None,
    entrance_id: int | None = None,
    riser_id: Annotated[int | None, Query(description="Flats the riser passes.")] = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Flats; filter by building, entrance or riser."""
    where = (
        Where()
        .add("building_id = {}", building_id)
        .add("entrance_id = {}", entrance_id)
        .add("id in (select flat_id from radiators where riser_id = {})", riser_id)
        .add("id = any({})", who.flat_filter())
    )
    rows, nxt = await fetch_page(pool, _FLATS, where, cursor, limit)
    return Page(items=[FlatPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/flats/{flat_id}", response_model=FlatPublic)
async def get_flat(flat_id: int, pool: Pool, who: Reader) -> FlatPublic:
    """One flat."""
    check_flat(who, flat_id)
    row = await pool.fetchrow(f"{_FLATS} where id = $1", flat_id)
    if row is None:
        raise not_found("flat")
    return FlatPublic(**row)


@router.get("/accounts", response_model=Page[AccountPublic])
async def list_accounts(
    pool: Pool, who: Reader, flat_id: int | None = None, cursor: Cursor = None, limit: Limit = 100
) -> Page:
    """Customer accounts (one per flat; a consumer sees their own)."""
    where = (
        Where()
        .add("flat_id = {}", flat_id)
        .add("id = {}", who.account_id if who.is_consumer else None)
    )
    rows, nxt = await fetch_page(pool, _ACCOUNTS, where, cursor, limit)
    return Page(items=[AccountPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/meters", response_model=Page[MeterPublic])
async def list_meters(
    pool: Pool,
    who: Reader,
    building_id: BuildingId = None,
    flat_id: int | None = None,
    riser_id: int | None = None,
    utility: str | None = None,
    role: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Meters with the radio module input they are wired to."""
    where = (
        Where()
        .add("m.building_id = {}", building_id)
        .add("m.flat_id = {}", flat_id)
        .add("m.riser_id = {}", riser_id)
        .add("m.utility = {}", utility)
        .add("m.role = {}", role)
        .add("m.flat_id = any({})", who.flat_filter())
    )
    rows, nxt = await fetch_page(
        pool, f"select {METER_COLUMNS} from {METER_FROM}", where, cursor, limit, "m.id"
    )
    return Page(items=[MeterPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/meters/{meter_id}", response_model=MeterPublic)
async def get_meter(meter_id: int, pool: Pool, who: Reader) -> MeterPublic:
    """One meter."""
    return MeterPublic(**await visible_meter(pool, who, meter_id))


class SearchHit(BaseModel):
    """A flat found by a search, with what matched."""

    id: int = Field(description="The flat's id.")
    number: str
    building_id: int
    building_name: str
    address: str
    matched: str = Field(description="flat | account | holder | meter | module")
    value: str = Field(description="The text that matched (the number, name or serial).")


# one row per flat: the first kind of match (a flat by its number and its building's
# address or name, an account by number or holder, a meter or module by serial)
_SEARCH = """
select * from (
  select distinct on (f.id) f.id, f.number, b.id as building_id, b.name as building_name,
         b.address, x.matched, x.value
  from (
    select f.id as flat_id, 1 as rank, 'flat' as matched, f.number || ', ' || b.address as value
    from flats f join buildings b on b.id = f.building_id
    where f.number = any($1::text[])
      and (select bool_and(f.number = w or b.address ilike '%' || w || '%'
                           or b.name ilike '%' || w || '%' or b.code ilike w)
           from unnest($1::text[]) w)
    union all
    select flat_id, 2, 'account', number from accounts where number ilike $2 || '%'
    union all
    select flat_id, 3, 'holder', holder_name from accounts
    where length($3) >= 3 and holder_name ilike '%' || $2 || '%'
    union all
    select flat_id, 4, 'meter', serial from meters
    where flat_id is not null and serial ilike $2 || '%'
    union all
    select flat_id, 5, 'module', serial::text from radio_modules
    where flat_id is not null and serial::text = $3
  ) x
  join flats f on f.id = x.flat_id join buildings b on b.id = f.building_id
  order by f.id, x.rank
) hits
"""


@router.get("/search", response_model=Page[SearchHit])
async def search(
    pool: Pool,
    _: Staff,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=100,
            description="A flat number with words of its address or building ('12 Dacia'), "
            "an account number, a holder's name, a meter or module serial (a number or "
            "serial may end in *).",
        ),
    ],
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page:
    """Flats found by flat number and address, account number or holder, meter or module
    serial, ordered by flat id."""
    words = q.split()
    if not words:
        raise ApiError(400, "'q' has no words")
    text = " ".join(words)
    pattern = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern = pattern.replace("*", "%")
    where = Where()
    for value in (words, pattern, text):
        where.param(value)
    rows, nxt = await fetch_page(pool, _SEARCH, where, cursor, limit)
    return Page(items=[SearchHit(**r) for r in rows], next_cursor=nxt)
