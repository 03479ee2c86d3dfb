"""The API's conventions (docs/api.md, "Conventions"), enforced on the OpenAPI document
and on real answers: one paging shape for every list, one shape and one set of
parameters for every series, one time format, documented error codes, CSV everywhere a
format is offered."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest

from .conftest import World, auth, points

pytestmark = pytest.mark.asyncio(loop_scope="session")

DOCS = Path(__file__).resolve().parents[3] / "docs" / "api.md"
Z_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
# composed documents for the portal's pages (docs/api.md): their series parts share the
# series shape, but they are not series endpoints of their own
PORTAL_VIEWS = "portal views"


@pytest.fixture(scope="module")
async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/api/v1/openapi.json")).json()


@pytest.fixture(scope="module")
async def group_id(world: World) -> int:
    """Three days of registers of the world's meter, and a balance group with three days
    of balance's imbalance series (the synthetic world has neither)."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    conn = await asyncpg.connect(world.database_url)
    try:
        await conn.execute(
            """insert into pulse_readings (module_serial, input, ts, count)
               select c.module_serial, c.input, h, 1000 + 7 * row_number() over (order by h)
               from channels c, generate_series($2::timestamptz - interval '3 days', $2, '1 hour') h
               where c.meter_id = $1 on conflict do nothing""",
            world.meter_id,
            now,
        )
        group: int = await conn.fetchval(
            """insert into balance_groups (name, utility, kind, building_id)
               values ('conventions', 'heat', 'custom', $1) returning id""",
            world.building_id,
        )
        await conn.execute(
            """insert into imbalance_series (group_id, resolution, period_start, unit,
                                             balance_value, subscribers_value, imbalance, night)
               select $1, 'day', d, 'kWh', 100.123456789, 90.2, 9.923456789, false
               from generate_series($2::timestamptz - interval '3 days', $2, '1 day') d""",
            group,
            now,
        )
    finally:
        await conn.close()
    return group


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _gets(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(path, ops["get"]) for path, ops in doc["paths"].items() if "get" in ops]


def _ok_schema(doc: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    content = op["responses"].get("200", {}).get("content", {})
    return _resolve(doc, content.get("application/json", {}).get("schema", {}))


def _query(op: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in op.get("parameters", []) if p["in"] == "query"}


async def test_every_list_is_a_page(openapi: dict[str, Any]) -> None:
    """No operation answers a bare array; every {items, next_cursor} takes cursor and
    limit."""
    bare = [path for path, op in _gets(openapi) if _ok_schema(openapi, op).get("type") == "array"]
    assert bare == []
    pages = 0
    for path, op in _gets(openapi):
        props = _ok_schema(openapi, op).get("properties", {})
        if "items" in props:
            pages += 1
            assert "next_cursor" in props, path
            assert {"cursor", "limit"} <= set(_query(op)), path
    assert pages >= 15


async def test_every_series_takes_the_same_parameters_and_answers_one_shape(
    openapi: dict[str, Any],
) -> None:
    """Every operation with a resolution (outside the portal views) takes from, to,
    resolution and format=json|csv, and answers a series of the one columnar shape."""
    found = []
    for path, op in _gets(openapi):
        query = _query(op)
        if "resolution" not in query or PORTAL_VIEWS in op.get("tags", []):
            continue
        found.append(path)
        assert {"from", "to", "resolution", "format"} <= set(query), path
        assert set(_resolve(openapi, query["format"]["schema"])["enum"]) == {"json", "csv"}
        assert set(_resolve(openapi, query["resolution"]["schema"])["enum"]) == {
            "hour",
            "day",
            "month",
        }
        _assert_series(openapi, _ok_schema(openapi, op), path)
    assert sorted(found) == [
        "/api/v1/balance-groups/{group_id}/imbalance",
        "/api/v1/flats/{flat_id}/heat/series",
        "/api/v1/meters/{meter_id}/consumption",
    ]


SERIES_AXIS = {"resolution", "time_zone", "start", "step", "partial"}


def _assert_series(doc: dict[str, Any], body: dict[str, Any], where: str) -> None:
    """The one series shape: a time axis (start in date-time format, an ISO 8601 step, the
    time zone of days and months), flagged buckets as lists of indices, every other array
    one value per bucket; no point objects."""
    props = body["properties"]
    assert set(props) >= SERIES_AXIS, where
    assert "points" not in props, where
    assert props["start"]["anyOf"][0]["format"] == "date-time", where
    assert set(props["step"]["enum"]) == {"PT1H", "P1D", "P1M"}, where
    assert set(props["resolution"]["enum"]) == {"hour", "day", "month"}, where
    arrays = {name: p for name, p in props.items() if p.get("type") == "array"}
    assert "unit" in props, where
    assert len(arrays) >= 2, where
    for name, array in arrays.items():
        item = _resolve(doc, array["items"])
        if name in ("partial", "estimated", "night"):
            assert item["type"] == "integer", (where, name)
        elif name != "alert_spans":
            assert {t.get("type") for t in item.get("anyOf", [item])} <= {"number", "null"}, (
                where,
                name,
            )


def _series_in(doc: dict[str, Any], schema: dict[str, Any], seen: set[str]) -> set[str]:
    """The names of the series (schemas with a ``step``) ``schema`` holds, each checked."""
    name = ""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        if name in seen:
            return set()
        seen.add(name)
    schema = _resolve(doc, schema)
    props = schema.get("properties", {})
    found = set()
    if "step" in props:
        _assert_series(doc, schema, name)
        found.add(name)
    for sub in [*props.values(), *schema.get("anyOf", [])]:
        found |= _series_in(doc, sub, seen)
    if "items" in schema:
        found |= _series_in(doc, schema["items"], seen)
    return found


async def test_every_series_anywhere_has_the_one_shape(openapi: dict[str, Any]) -> None:
    """Series inside the portal views and the alert's evidence have the same shape, and no
    answer holds a list of ``points`` (objects ``{t, value, ...}``) any more; hourly lists
    are pages of ``items``."""
    seen: set[str] = set()
    found: set[str] = set()
    for _, op in _gets(openapi):
        content = op["responses"].get("200", {}).get("content", {})
        found |= _series_in(openapi, content.get("application/json", {}).get("schema", {}), seen)
    assert found == {"Series", "MeterSeries", "ImbalanceSeries", "EvidenceSeries"}
    for name, schema in openapi["components"]["schemas"].items():
        assert "points" not in schema.get("properties", {}), name


async def test_every_time_field_is_named_t(openapi: dict[str, Any]) -> None:
    """The items of every hourly list over a time range (from/to) name their time ``t``
    (not ``hour`` or ``ts``)."""
    checked = []
    for path, op in _gets(openapi):
        if "from" not in _query(op):
            continue
        props = _ok_schema(openapi, op)["properties"]
        if "items" in props:
            item = _resolve(openapi, props["items"]["items"])["properties"]
            assert "t" in item, path
            assert not {"hour", "ts"} & set(item), path
            checked.append(path)
    assert len(checked) == 2


async def test_every_error_code_is_documented(openapi: dict[str, Any]) -> None:
    """The codes the API can answer (the enum of the error body) are exactly the codes
    in the table of docs/api.md."""
    codes = set(openapi["components"]["schemas"]["ErrorBody"]["properties"]["code"]["enum"])
    section = DOCS.read_text().split("### Errors", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE))
    assert documented == codes


def _local_midnight(day: date, tz: str) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tz)).astimezone(UTC)


async def _site(world: World) -> tuple[str, Decimal]:
    conn = await asyncpg.connect(world.database_url)
    try:
        tz = await conn.fetchval(
            "select s.timezone from sites s join buildings b on b.site_id = s.id where b.id = $1",
            world.building_id,
        )
        weight = await conn.fetchval(
            "select pulse_weight from meters where id = $1", world.meter_id
        )
    finally:
        await conn.close()
    return tz, weight


def _z(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def test_date_bounds_are_local_midnight_and_cut_buckets_are_partial(
    client: httpx.AsyncClient, world: World
) -> None:
    """from/to as dates give whole local days (none partial, the first starts at the
    site's midnight); the same bounds as UTC midnights cut the first and last day, and
    those are flagged partial. Values are rounded to the meter's resolution."""
    tz, weight = await _site(world)
    assert tz != "UTC"  # otherwise both ranges coincide and the test proves nothing
    h = auth(world, "consumer")
    today = datetime.now(ZoneInfo(tz)).date()
    first, last = today - timedelta(days=10), today - timedelta(days=3)
    url = f"/api/v1/meters/{world.meter_id}/consumption"
    local = points(
        (
            await client.get(
                url,
                params={"from": first.isoformat(), "to": last.isoformat(), "resolution": "day"},
                headers=h,
            )
        ).json()
    )
    assert [p["t"] for p in local] == [
        _z(_local_midnight(first + timedelta(days=i), tz)) for i in range(7)
    ]
    assert not any(p["partial"] for p in local)
    decimals = -weight.normalize().as_tuple().exponent
    assert all(round(p["value"], decimals) == p["value"] for p in local)

    utc = points(
        (
            await client.get(
                url,
                params={
                    "from": f"{first}T00:00:00Z",
                    "to": f"{last}T00:00:00Z",
                    "resolution": "day",
                },
                headers=h,
            )
        ).json()
    )
    assert len(utc) == 8
    assert [p["partial"] for p in utc] == [True] + [False] * 6 + [True]


async def test_series_and_lists_agree_on_time_format(
    client: httpx.AsyncClient, world: World, group_id: int
) -> None:
    """Every time in series (their start), hourly lists and the portal's profile is ISO 8601
    UTC with Z."""
    h = auth(world, "consumer")
    series = [
        (await client.get(f"/api/v1/meters/{world.meter_id}/consumption", headers=h)).json(),
        (await client.get(f"/api/v1/flats/{world.flat_id}/heat/series", headers=h)).json(),
        (await client.get(f"/api/v1/flats/{world.flat_id}/profile", headers=h)).json()["heat"],
        (
            await client.get(
                f"/api/v1/balance-groups/{group_id}/imbalance", headers=auth(world, "operator")
            )
        ).json(),
    ]
    for body in series:
        assert Z_TIME.match(body["start"]), body
    lists = [
        (await client.get(f"/api/v1/flats/{world.flat_id}/heat", headers=h)).json()["items"],
        (await client.get(f"/api/v1/meters/{world.meter_id}/registers", headers=h)).json()["items"],
    ]
    for items in lists:
        assert items
        assert all(Z_TIME.match(item["t"]) for item in items), items[0]


async def test_hourly_list_pages_cover_the_range(client: httpx.AsyncClient, world: World) -> None:
    """Pages of a flat's heat hours, followed by their cursors, give the same hours as
    one page, in order and without repeats; the CSV export gives the same page with the
    next cursor in X-Next-Cursor."""
    h = auth(world, "consumer")
    url = f"/api/v1/flats/{world.flat_id}/heat"
    span = {"from": _z(datetime.now(UTC) - timedelta(days=3)), "to": _z(datetime.now(UTC))}
    whole = (await client.get(url, params={**span, "limit": 1000}, headers=h)).json()
    assert whole["next_cursor"] is None
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**span, "limit": 20, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(url, params=params, headers=h)).json()
        paged += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(whole["items"]) > 40
    assert paged == whole["items"]

    csv = await client.get(url, params={**span, "limit": 20, "format": "csv"}, headers=h)
    lines = csv.text.splitlines()
    assert lines[0] == "t,measured_kwh,common_kwh,total_kwh,estimated,flags"
    assert len(lines) == 21
    assert lines[1].split(",")[0] == whole["items"][0]["t"]
    assert lines[1].split(",")[4] in ("true", "false")
    second = (
        await client.get(
            url, params={**span, "limit": 20, "cursor": csv.headers["X-Next-Cursor"]}, headers=h
        )
    ).json()
    assert second["items"] == whole["items"][20:40]


async def test_every_format_parameter_gives_csv(
    client: httpx.AsyncClient, world: World, openapi: dict[str, Any], group_id: int
) -> None:
    """Every operation that offers format=csv answers text/csv, rows and all, booleans
    as lowercase true/false (documents such as an invoice's have formats of their own)."""
    ids = {
        "meter_id": world.meter_id,
        "flat_id": world.flat_id,
        "group_id": group_id,
        "building_id": world.building_id,
    }
    offered = [
        path
        for path, op in _gets(openapi)
        if "csv"
        in _resolve(openapi, _query(op).get("format", {}).get("schema", {})).get("enum", [])
    ]
    assert len(offered) >= 5
    h = auth(world, "admin")
    for path in offered:
        url = path.format(**ids)
        answer = await client.get(url, params={"format": "csv", "resolution": "day"}, headers=h)
        assert answer.status_code == 200, (url, answer.text)
        assert answer.headers["content-type"].startswith("text/csv"), url
        header, *rows = answer.text.splitlines()
        assert header.split(",")[0] == "t", url
        assert rows, url
        cells = {cell for row in rows for cell in row.split(",")}
        assert not {"True", "False"} & cells, url


async def test_commands_are_paged_newest_first(client: httpx.AsyncClient, world: World) -> None:
    """GET /commands pages newest first; following the cursors gives every command of
    the meter once, those of one instant included."""
    at = datetime(2026, 1, 5, 12, tzinfo=UTC)
    conn = await asyncpg.connect(world.database_url)
    try:
        for i, created in enumerate([at, at, at + timedelta(minutes=1), at - timedelta(hours=1)]):
            await conn.execute(
                """insert into commands (id, meter_id, module_serial, concentrator_serial,
                                         action, requested_by, created_at, updated_at)
                   values ($1, $2, 1, 1, 'ping', 'test', $3, $3)""",
                f"conventions-{i}",
                world.other_meter_id,
                created,
            )
    finally:
        await conn.close()
    h = auth(world, "operator")
    url = f"/api/v1/commands?meter_id={world.other_meter_id}"
    whole = (await client.get(url, headers=h)).json()["items"]
    assert [c["created_at"] for c in whole] == sorted(
        (c["created_at"] for c in whole), reverse=True
    )
    paged: list[dict[str, Any]] = []
    cursor = ""
    while cursor is not None:
        page = (
            await client.get(f"{url}&limit=1{cursor and '&cursor=' + cursor}", headers=h)
        ).json()
        paged += page["items"]
        cursor = page["next_cursor"]
    assert len(whole) == 4
    assert paged == whole
