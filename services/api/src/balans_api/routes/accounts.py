"""``/accounts/...``: account holders over time (operate scope, audited, one transaction).

An account holds its flat from ``opened_on`` to ``closed_on`` (local days; the move-out day
is the first day not held). A tenant change closes one account and opens the next on the
same day, with the meters' registers read at that day's local midnight; the readings go
through the concentrators' idempotent path. Billing invoices each account for its own
days, the days no account holds go to the building's owner account (an account without a
flat). A refusal is a 422 naming every problem with its path; nothing is written then.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from balans_api import audit
from balans_api.deps import Operator, Pool
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.models import AccountPublic
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.provisioning import refused, wake_relay
from balans_api.register_readings import announce_readings, announce_rebilling
from balans_db.provisioning.importer import WORLD_LOCK
from balans_db.provisioning.readings import (
    CheckedReadings,
    RegisterReading,
    check_readings,
    write_readings,
)
from balans_db.provisioning.validation import InvalidDocumentError, Problem

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

router = APIRouter(prefix="/accounts", tags=["accounts"], responses=ERROR_RESPONSES)

_COLUMNS = """a.id, a.number, a.holder_name, a.flat_id, a.building_id, a.residents, a.email,
a.opened_on, a.closed_on"""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DayReading(BaseModel):
    """A meter's register read on the day of the change (in its unit, kWh or m3)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    meter: str = Field(min_length=1, description="meter serial", examples=["heat-100002-0"])
    value: Decimal = Field(alias="register", ge=0, examples=["1234.567"])


class Holder(_Body):
    number: str = Field(min_length=1, examples=["ref-2a-17-b"])
    holder_name: str = Field(min_length=1, examples=["New tenant"])
    residents: int = Field(1, ge=0, le=50)
    email: str | None = Field(None, max_length=200)


class NewAccount(Holder):
    """An account opened on a flat (or, with ``flat`` null, the building's owner account)."""

    building: str = Field(min_length=1, examples=["ref-2a"])
    flat: str | None = Field(description="flat number; null = the building's owner account")
    opened_on: date | None = Field(None, description="first day held; null = since always")
    readings: list[DayReading] = Field(default_factory=list)


class Closing(_Body):
    closed_on: date = Field(description="the move-out day: the first day no longer held")
    readings: list[DayReading] = Field(default_factory=list)


class TenantChange(_Body):
    """Move-out and move-in on one day: the flat's current account closes on ``on`` and
    ``account`` opens on it."""

    building: str = Field(min_length=1, examples=["ref-2a"])
    flat: str = Field(min_length=1, examples=["17"])
    on: date
    account: Holder
    readings: list[DayReading] = Field(default_factory=list)


class AccountChange(BaseModel):
    """The accounts written and the readings stored (``inserted`` is 0 when every reading
    was stored before: entering the same readings again changes nothing)."""

    accounts: list[AccountPublic]
    readings_received: int
    readings_inserted: int


async def _flat(conn: asyncpg.Connection, building: str, flat: str | None) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """select b.id as building_id, f.id as flat_id, s.timezone from buildings b
           join sites s on s.id = b.site_id
           left join flats f on f.building_id = b.id and f.number = $2
           where b.code = $1""",
        building,
        flat,
    )


def _midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(), ZoneInfo(tz))


async def _readings_problems(
    conn: asyncpg.Connection, flat_id: int | None, readings: list[DayReading], path: str
) -> list[Problem]:
    """A day's readings must be of the flat's own meters (or of its risers' meters)."""
    if not readings:
        return []
    own = {
        r["serial"]
        for r in await conn.fetch(
            """select serial from meters where flat_id = $1
               or riser_id in (select riser_id from radiators where flat_id = $1)""",
            flat_id,
        )
    }
    return [
        Problem(f"{path}[{i}].meter", f"{r.meter!r} is not a meter of this flat")
        for i, r in enumerate(readings)
        if r.meter not in own
    ]


async def _overlaps(
    conn: asyncpg.Connection, flat_id: int, opened_on: date | None, skip: int | None = None
) -> list[str]:
    """Accounts of the flat still holding it on or after ``opened_on``."""
    rows = await conn.fetch(
        """select number, closed_on from accounts where flat_id = $1 and id <> $3
           and (closed_on is null or $2::date is null or closed_on > $2::date)""",
        flat_id,
        opened_on,
        skip or 0,
    )
    return [r["number"] for r in rows]


async def _check(
    conn: asyncpg.Connection, readings: list[DayReading], at: datetime | None
) -> CheckedReadings:
    """The day's readings as registers at ``at`` (the change day's local midnight)."""
    return await check_readings(
        conn,
        [RegisterReading(serial=r.meter, time=at, value=r.value) for r in readings]
        if at is not None
        else [],
        [f"readings[{i}]" for i in range(len(readings))],
    )


def _refuse(problems: list[Problem], checked: CheckedReadings) -> None:
    """422 naming every problem (the change's and its readings'); nothing written."""
    if problems or checked.problems:
        raise refused(InvalidDocumentError([*problems, *checked.problems]), "account change")


async def _store(conn: asyncpg.Connection, checked: CheckedReadings) -> tuple[int, int]:
    """Store the checked readings and announce them; (received, inserted)."""
    report = await write_readings(conn, checked)
    await announce_readings(conn, report)
    return report.received, report.inserted


async def _public(conn: asyncpg.Connection, ids: list[int]) -> list[AccountPublic]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from accounts a where a.id = any($1::int[]) order by a.id", ids
    )
    return [AccountPublic(**r) for r in rows]


_INSERT = """insert into accounts (number, holder_name, flat_id, building_id, residents, email,
opened_on) values ($1, $2, $3, $4, $5, $6, $7) returning id"""


async def _insert(
    conn: asyncpg.Connection,
    holder: Holder,
    flat_id: int | None,
    building_id: int,
    opened_on: date | None,
) -> int:
    account_id: int = await conn.fetchval(
        _INSERT,
        holder.number,
        holder.holder_name,
        flat_id,
        building_id if flat_id is None else None,
        holder.residents,
        holder.email,
        opened_on,
    )
    return account_id


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AccountChange)
async def open_account(body: NewAccount, request: Request, pool: Pool, who: Operator) -> Any:
    """Open an account on a flat from ``opened_on`` (with the day's readings), or the
    building's owner account (``flat`` null). 422 when the number is taken, the flat is
    still held on that day, or a reading is not of the flat's meters."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        place = await _flat(conn, body.building, body.flat)
        problems: list[Problem] = []
        if place is None:
            raise not_found(f"building {body.building!r}")
        if body.flat is not None and place["flat_id"] is None:
            problems.append(Problem("flat", f"no flat {body.flat!r} in {body.building}"))
        if await conn.fetchval("select 1 from accounts where number = $1", body.number):
            problems.append(Problem("number", f"account number {body.number!r} is taken"))
        if body.flat is None:
            if await conn.fetchval(
                "select number from accounts where building_id = $1", place["building_id"]
            ):
                problems.append(Problem("flat", f"{body.building} has an owner account already"))
            if body.readings:
                problems.append(Problem("readings", "an owner account has no meters to read"))
        elif place["flat_id"] is not None:
            for number in await _overlaps(conn, place["flat_id"], body.opened_on):
                problems.append(
                    Problem(
                        "opened_on",
                        f"flat {body.flat} is still held by account {number} then: close it "
                        "first (or POST /accounts/change)",
                    )
                )
            problems += await _readings_problems(conn, place["flat_id"], body.readings, "readings")
        if body.readings and body.opened_on is None:
            problems.append(Problem("opened_on", "readings of the day need the day"))
        at = _midnight(body.opened_on, place["timezone"]) if body.opened_on else None
        checked = await _check(conn, body.readings, at)
        _refuse(problems, checked)
        account_id = await _insert(
            conn, body, place["flat_id"], place["building_id"], body.opened_on
        )
        received, inserted = await _store(conn, checked)
        rebilled = await announce_rebilling(conn, place["building_id"], at or EPOCH)
        await audit.record(
            conn,
            who.actor,
            "account.open",
            body.number,
            building=body.building,
            flat=body.flat,
            opened_on=str(body.opened_on),
            readings=received,
            rebilled_periods=rebilled,
        )
        accounts = await _public(conn, [account_id])
    wake_relay(request.app)
    return AccountChange(accounts=accounts, readings_received=received, readings_inserted=inserted)


@router.post("/change", response_model=AccountChange)
async def tenant_change(body: TenantChange, request: Request, pool: Pool, who: Operator) -> Any:
    """Move-out and move-in on one day, in one transaction: the account holding the flat on
    ``on`` closes on it, ``account`` opens on it, the registers read that day are stored at
    its local midnight. Billing splits the period between the two."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        place = await _flat(conn, body.building, body.flat)
        if place is None:
            raise not_found(f"building {body.building!r}")
        problems: list[Problem] = []
        current = None
        if place["flat_id"] is None:
            problems.append(Problem("flat", f"no flat {body.flat!r} in {body.building}"))
        else:
            current = await conn.fetchrow(
                """select id, number, opened_on from accounts where flat_id = $1
                   and (opened_on is null or opened_on < $2)
                   and (closed_on is null or closed_on > $2)""",
                place["flat_id"],
                body.on,
            )
            if current is None:
                problems.append(
                    Problem("on", f"no account holds flat {body.flat} on {body.on} to close")
                )
            current_id = current["id"] if current is not None else None
            later = await _overlaps(conn, place["flat_id"], body.on, current_id)
            for number in later:
                problems.append(Problem("on", f"account {number} holds the flat after {body.on}"))
            problems += await _readings_problems(conn, place["flat_id"], body.readings, "readings")
        if await conn.fetchval("select 1 from accounts where number = $1", body.account.number):
            problems.append(
                Problem("account.number", f"account number {body.account.number!r} is taken")
            )
        checked = await _check(conn, body.readings, _midnight(body.on, place["timezone"]))
        _refuse(problems, checked)
        assert current is not None  # a missing one is a problem above
        await conn.execute(
            "update accounts set closed_on = $2 where id = $1", current["id"], body.on
        )
        new_id = await _insert(conn, body.account, place["flat_id"], place["building_id"], body.on)
        received, inserted = await _store(conn, checked)
        rebilled = await announce_rebilling(
            conn, place["building_id"], _midnight(body.on, place["timezone"])
        )
        await audit.record(
            conn,
            who.actor,
            "account.change",
            f"{body.building}/{body.flat}",
            closed=current["number"],
            opened=body.account.number,
            on=str(body.on),
            readings=received,
            rebilled_periods=rebilled,
        )
        accounts = await _public(conn, [current["id"], new_id])
    wake_relay(request.app)
    return AccountChange(accounts=accounts, readings_received=received, readings_inserted=inserted)


@router.post("/{number}/close", response_model=AccountChange)
async def close_account(
    number: str, body: Closing, request: Request, pool: Pool, who: Operator
) -> Any:
    """Close an account on its move-out day (the first day it no longer holds the flat),
    with the registers read that day. Until another account opens, the flat is vacant."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        row = await conn.fetchrow(
            """select a.id, a.flat_id, a.opened_on, a.closed_on, s.timezone, b.id as building_id
               from accounts a join buildings b on b.id = coalesce(a.building_id,
                 (select building_id from flats where id = a.flat_id))
               join sites s on s.id = b.site_id where a.number = $1 for update of a""",
            number,
        )
        if row is None:
            raise not_found(f"account {number!r}")
        problems: list[Problem] = []
        if row["closed_on"] is not None:
            problems.append(Problem("closed_on", f"the account is closed since {row['closed_on']}"))
        if row["opened_on"] is not None and body.closed_on <= row["opened_on"]:
            problems.append(
                Problem("closed_on", f"must be after the day it opened ({row['opened_on']})")
            )
        problems += await _readings_problems(conn, row["flat_id"], body.readings, "readings")
        checked = await _check(conn, body.readings, _midnight(body.closed_on, row["timezone"]))
        _refuse(problems, checked)
        await conn.execute(
            "update accounts set closed_on = $2 where id = $1", row["id"], body.closed_on
        )
        received, inserted = await _store(conn, checked)
        rebilled = await announce_rebilling(
            conn, row["building_id"], _midnight(body.closed_on, row["timezone"])
        )
        await audit.record(
            conn,
            who.actor,
            "account.close",
            number,
            closed_on=str(body.closed_on),
            readings=received,
            rebilled_periods=rebilled,
        )
        accounts = await _public(conn, [row["id"]])
    wake_relay(request.app)
    return AccountChange(accounts=accounts, readings_received=received, readings_inserted=inserted)


_PERIODS = f"""select * from (select {_COLUMNS}, b.code as building from accounts a
left join flats f on f.id = a.flat_id
join buildings b on b.id = coalesce(a.building_id, f.building_id)) x"""


@router.get("/periods", response_model=Page[AccountPublic])
async def building_accounts(
    building: str, pool: Pool, who: Operator, cursor: Cursor = None, limit: Limit = 100
) -> Any:
    """Every account of a building, past and present, with its period (the owner account
    has no flat), by id."""
    where = Where().add("building = {}", building)
    rows, nxt = await fetch_page(pool, _PERIODS, where, cursor, limit)
    fields = AccountPublic.model_fields
    return Page[AccountPublic](
        items=[AccountPublic(**{k: r[k] for k in fields}) for r in rows], next_cursor=nxt
    )
