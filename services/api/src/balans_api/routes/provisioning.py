"""``/provisioning/...``: create, change and retire sites, buildings and everything in a
building (operate scope; every change audited and announced as TopologyChanged).

A building is edited as its world document (docs/provisioning.md): each request changes
one building, the whole building is checked again (layout needs, references, hardware
limits) and the difference is written in one transaction, or nothing is and the 422
names every problem with its path. Radiators are part of their flat, a meter's channel
part of its meter. Items are named by natural keys (numbers, serials), never ids.
"""

# no ``from __future__ import annotations``: the per-collection routes are built in a
# loop and FastAPI must see their body models as classes

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status

from balans_api import audit
from balans_api.deps import Operator, Pool, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.provisioning import (
    Building,
    announce,
    change_building,
    keys_hex,
    load_building,
    vault_of,
    wake_relay,
    write_document,
)
from balans_api.provisioning_models import BuildingPatch, Changed, KeyRotation, RotatedKey
from balans_db.provisioning.document import COLLECTIONS, BuildingDoc, Part, SiteDoc
from balans_db.provisioning.importer import WORLD_LOCK, ImportReport
from balans_db.provisioning.keys import rotate_key
from balans_db.topology import SiteSpec, building_document, regular_building

router = APIRouter(prefix="/provisioning", tags=["provisioning"], responses=ERROR_RESPONSES)

_EXAMPLE_SITE = SiteSpec("example-site", "Example", "str. Exemplu 1", 47.0, 28.8)
# a small 1b block (a flow meter and a sensor pair per flat), valid as it stands
EXAMPLE_BUILDING = building_document(
    regular_building(
        code="example-1b",
        name="Example block",
        address="str. Exemplu 1",
        site=_EXAMPLE_SITE,
        layout="1b",
        floors=1,
        flats_per_floor=(2,),
        risers_per_entrance=(2,),
        index=90,
        multi_utility_every=1000,
    )
)

_SITE_COLUMNS = "code, name, address, latitude, longitude, timezone, retired_on"


def _changed(report: ImportReport, code: str | None = None) -> Changed:
    return Changed(
        building=code, changes=report.changes.counts(), concentrator_keys=keys_hex(report.keys)
    )


# --- sites ---


async def _site(pool: Pool, code: str) -> dict[str, Any]:
    row = await pool.fetchrow(f"select {_SITE_COLUMNS} from sites where code = $1", code)
    if row is None:
        raise not_found(f"site {code!r}")
    return dict(row)


@router.get("/sites/{code}", response_model=SiteDoc)
async def get_site(code: str, pool: Pool, _: Staff) -> dict[str, Any]:
    """A site as the world document describes it."""
    return await _site(pool, code)


async def _write_site(request: Request, site: SiteDoc, actor: str, action: str) -> Changed:
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        report = await write_document(
            conn, {"sites": [site.model_dump(mode="json")]}, vault_of(request), "site"
        )
        await audit.record(conn, actor, action, f"site:{site.code}")
    return _changed(report)


@router.post("/sites", response_model=Changed, status_code=status.HTTP_201_CREATED)
async def create_site(request: Request, site: SiteDoc, pool: Pool, principal: Operator) -> Changed:
    """Create a site (a district or town: its time zone is its buildings')."""
    if await pool.fetchval("select 1 from sites where code = $1", site.code):
        raise ApiError(409, f"site {site.code!r} exists already")
    return await _write_site(request, site, principal.actor, "site.create")


@router.put("/sites/{code}", response_model=Changed)
async def update_site(
    code: str, request: Request, site: SiteDoc, pool: Pool, principal: Operator
) -> Changed:
    """Change a site's name, address, position or time zone."""
    if site.code != code:
        raise ApiError(422, "the body's code differs from the path's")
    await _site(pool, code)
    return await _write_site(request, site, principal.actor, "site.update")


@router.delete("/sites/{code}", response_model=Changed)
async def retire_site(code: str, request: Request, pool: Pool, principal: Operator) -> Changed:
    """Retire a site (409 while it has buildings in service): it stays with its history."""
    site = await _site(pool, code)
    active = await pool.fetchval(
        """select count(*) from buildings b join sites s on s.id = b.site_id
           where s.code = $1 and b.retired_on is null""",
        code,
    )
    if active:
        raise ApiError(409, f"site {code!r} has {active} building(s) in service; retire them first")
    site["retired_on"] = site["retired_on"] or datetime.now(UTC).date()
    return await _write_site(request, SiteDoc(**site), principal.actor, "site.retire")


# --- buildings ---


@router.get("/buildings/{code}", response_model=BuildingDoc)
async def get_building(code: str, pool: Pool, _: Staff) -> Building:
    """The building with everything in it, as the world document describes it."""
    async with pool.acquire() as conn:
        return await load_building(conn, code)


@router.post("/buildings", response_model=Changed, status_code=status.HTTP_201_CREATED)
async def create_building(
    request: Request,
    pool: Pool,
    principal: Operator,
    building: Annotated[
        BuildingDoc,
        Body(openapi_examples={"1b block": {"summary": "two flats", "value": EXAMPLE_BUILDING}}),
    ],
) -> Changed:
    """Create a building with its equipment (its site must exist). The answer carries
    the device key of each new concentrator, once."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        if await conn.fetchval("select 1 from buildings where code = $1", building.code):
            raise ApiError(409, f"building {building.code!r} exists already")
        report = await write_document(
            conn,
            {"buildings": [building.model_dump(mode="json")]},
            vault_of(request),
            "building",
        )
        await audit.record(
            conn,
            principal.actor,
            "building.create",
            f"building:{building.code}",
            changes=report.changes.counts(),
        )
        await announce(conn, report)
    wake_relay(request.app)
    return _changed(report, building.code)


@router.put("/buildings/{code}", response_model=Changed)
async def replace_building(
    code: str, request: Request, building: BuildingDoc, principal: Operator
) -> Changed:
    """Make the stored building look exactly like this description (what is missing
    from it is removed)."""
    if building.code != code:
        raise ApiError(422, "the body's code differs from the path's")

    def replace(stored: Building) -> None:
        stored.clear()
        stored.update(building.model_dump(mode="json"))

    report = await change_building(
        request, code, replace, principal.actor, "building.replace", f"building:{code}"
    )
    return _changed(report, code)


@router.patch("/buildings/{code}", response_model=Changed)
async def update_building(
    code: str, request: Request, patch: BuildingPatch, principal: Operator
) -> Changed:
    """Change the building's own fields: site, name, address, floors, layout, methodology."""

    def apply(stored: Building) -> None:
        stored.update(patch.model_dump(mode="json", exclude_unset=True))

    report = await change_building(
        request, code, apply, principal.actor, "building.update", f"building:{code}"
    )
    return _changed(report, code)


@router.delete("/buildings/{code}", response_model=Changed)
async def retire_building(code: str, request: Request, principal: Operator) -> Changed:
    """Retire a building: it keeps its history (readings, invoices), its concentrators
    are no longer accepted by ingest."""

    def retire(stored: Building) -> None:
        stored["retired_on"] = stored["retired_on"] or datetime.now(UTC).date().isoformat()

    report = await change_building(
        request, code, retire, principal.actor, "building.retire", f"building:{code}"
    )
    return _changed(report, code)


# --- the items of a building, one collection at a time ---


def _find(items: list[dict[str, Any]], field: str, key: str) -> int | None:
    return next((i for i, item in enumerate(items) if str(item[field]) == key), None)


def _collection_routes(name: str, model: type[Part], field: str) -> None:
    singular = name[:-1].replace("_", " ")

    async def create(
        code: str,
        request: Request,
        item: model,  # type: ignore[valid-type]
        principal: Operator,
    ) -> Changed:
        data = item.model_dump(mode="json")  # type: ignore[attr-defined]

        def add(stored: Building) -> None:
            if _find(stored[name], field, str(data[field])) is not None:
                raise ApiError(409, f"{singular} {data[field]} exists in building {code}")
            stored[name].append(data)

        report = await change_building(
            request, code, add, principal.actor, f"{name}.create", f"{singular}:{data[field]}"
        )
        return _changed(report, code)

    async def replace(
        code: str,
        key: str,
        request: Request,
        item: model,  # type: ignore[valid-type]
        principal: Operator,
    ) -> Changed:
        data = item.model_dump(mode="json")  # type: ignore[attr-defined]
        if str(data[field]) != key:
            raise ApiError(422, f"the body's {field} differs from the path's")

        def put(stored: Building) -> None:
            at = _find(stored[name], field, key)
            if at is None:
                raise not_found(f"{singular} {key} in building {code}")
            stored[name][at] = data

        report = await change_building(
            request, code, put, principal.actor, f"{name}.update", f"{singular}:{key}"
        )
        return _changed(report, code)

    async def remove(code: str, key: str, request: Request, principal: Operator) -> Changed:
        def drop(stored: Building) -> None:
            at = _find(stored[name], field, key)
            if at is None:
                raise not_found(f"{singular} {key} in building {code}")
            del stored[name][at]

        report = await change_building(
            request, code, drop, principal.actor, f"{name}.delete", f"{singular}:{key}"
        )
        return _changed(report, code)

    create.__doc__ = f"Add a {singular} to the building (409 if its {field} is taken)."
    replace.__doc__ = f"Replace the {singular} named by its {field}."
    remove.__doc__ = (
        f"Remove the {singular} from the building (what depends on it must go first, "
        "or the 422 says what is left pointing at it)."
    )
    path = f"/buildings/{{code}}/{name}"
    router.add_api_route(
        path,
        create,
        methods=["POST"],
        response_model=Changed,
        status_code=status.HTTP_201_CREATED,
        name=f"create_{name}",
        summary=f"Add a {singular}",
    )
    router.add_api_route(
        f"{path}/{{key}}",
        replace,
        methods=["PUT"],
        response_model=Changed,
        name=f"replace_{name}",
        summary=f"Replace a {singular}",
    )
    router.add_api_route(
        f"{path}/{{key}}",
        remove,
        methods=["DELETE"],
        response_model=Changed,
        name=f"delete_{name}",
        summary=f"Remove a {singular}",
    )


for _name, (_model, _field) in COLLECTIONS.items():
    _collection_routes(_name, _model, _field)


# --- concentrator keys ---


@router.post("/concentrators/{serial}/rotate-key", response_model=RotatedKey)
async def rotate_concentrator_key(
    serial: int, request: Request, body: KeyRotation, pool: Pool, principal: Operator
) -> RotatedKey:
    """Issue the concentrator a new key (shown once). The old key keeps working for
    ``overlap_hours``, so the concentrator is never cut off while it is re-keyed."""
    async with pool.acquire() as conn, conn.transaction():
        rotated = await rotate_key(
            conn, serial, vault_of(request), timedelta(hours=body.overlap_hours)
        )
        if rotated is None:
            raise not_found(f"concentrator {serial}")
        await audit.record(
            conn,
            principal.actor,
            "concentrator.rotate_key",
            f"concentrator:{serial}",
            overlap_hours=body.overlap_hours,
        )
    return RotatedKey(
        serial=serial, key=rotated.key.hex(), previous_key_valid_until=rotated.previous_key_until
    )
