"""Alerts raised by balance: the queue (filtered, sorted, paged; a summary per alert),
counts by kind, one alert with its evidence drawn as series and its history, and the
operators' acknowledge and resolve (forwarded to balance, which alone writes alerts;
audited). Consumers see the alerts of their own flat."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
from fastapi import APIRouter, Path, Query, Request
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from pydantic import BaseModel, Field

from balans_api import audit
from balans_api.deps import Operator, Pool, Reader
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.models import AlertNote, AlertPublic, SeriesAxis
from balans_api.paging import (
    Cursor,
    Limit,
    Page,
    Where,
    decode_key,
    encode_cursor,
    fetch_page,
    key_time,
    time_key,
)
from balans_api.principal import Principal
from balans_api.series import axis, columns, site_timezone
from balans_db.queries import allocation, balance
from balans_db.queries.allocation import Points
from balans_protocol import subjects
from balans_protocol.messages import AlertAction, AlertActionReply

BALANCE_TIMEOUT_S = 10.0
AlertId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The alert's id.")]
Since = Annotated[
    datetime | None,
    Query(description="Alerts whose fault was seen at or after this time (naive = UTC)."),
]
Until = Annotated[
    datetime | None, Query(description="Alerts whose fault began before this time (naive = UTC).")
]
# the evidence chart: two weeks before the fault, a few days after, at most 120 days
BEFORE = timedelta(days=14)
AFTER = timedelta(days=3)
LONGEST = timedelta(days=120)

router = APIRouter(tags=["alerts"], responses=ERROR_RESPONSES)

Sort = Literal["id", "began", "-began"]
_SORT_SQL = {"began": "began_at, id", "-began": "began_at desc, id desc"}


class AlertCounts(BaseModel):
    """Alerts per kind under the same filters as the queue."""

    total: int
    open: int
    by_kind: dict[str, int] = Field(description="kind -> alerts of that kind.")
    open_by_kind: dict[str, int] = Field(description="kind -> open alerts of that kind.")
    open_by_building: dict[str, int] = Field(
        description="building id -> its open alerts (buildings with none left out)."
    )


class EvidenceSeries(SeriesAxis):
    """One line of the evidence chart: the meter's use, the group's balance meter, the
    members' sum, the imbalance and its band (balance's series), or a series balance
    kept in the alert's evidence."""

    name: str = Field(
        description="meter | balance_meter | members | imbalance | band_low | band_high, "
        "or the evidence key it comes from (imbalance_share, peers_predicted), and "
        "meter_hourly: the meter's use over the hours of peers_predicted."
    )
    unit: str | None
    values: list[float | None] = Field(description="One per bucket from `start`, null where none.")


class AlertEvent(BaseModel):
    at: datetime
    actor: str
    action: Literal["opened", "acknowledged", "resolved", "dismissed", "closed"]
    note: str = ""


class AlertDetail(AlertPublic):
    """One alert for its investigation."""

    figures: dict[str, Any] = Field(
        description="The evidence's single values (balance's names: loss, step_glr, ...)."
    )
    also_possible: list[str] = Field(description="Other kinds the data fits as well.")
    series: list[EvidenceSeries]
    history: list[AlertEvent] = Field(description="What happened to it, oldest first.")
    timezone: str = Field(description="The building's site's IANA zone (UTC without one).")


def _where(who: Principal) -> Where:
    return Where().add("flat_id = any({})", who.flat_filter())


def _utc(t: datetime | None) -> datetime | None:
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _filtered(
    who: Principal,
    since: datetime | None,
    until: datetime | None,
    state: str | None,
    kind: str | None,
    building_id: int | None,
    meter_id: int | None,
    flat_id: int | None,
) -> Where:
    where = (
        _where(who)
        .add("state = {}", state)
        .add("kind = {}", kind)
        .add("building_id = {}", building_id)
        .add("meter_id = {}", meter_id)
        .add("flat_id = {}", flat_id)
    )
    return where.add("last_hour >= {}", _utc(since)).add("began_at < {}", _utc(until))


@router.get("/alerts", response_model=Page[AlertPublic])
async def list_alerts(
    pool: Pool,
    who: Reader,
    since: Since = None,
    until: Until = None,
    state: Literal["open", "closed"] | None = None,
    kind: str | None = None,
    building_id: int | None = None,
    meter_id: int | None = None,
    flat_id: int | None = None,
    sort: Annotated[
        Sort, Query(description="id (default), began (fault began, oldest first), -began.")
    ] = "id",
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """The alert queue with a summary per alert (no evidence); filter by state, kind,
    building, meter, flat and time (`since`/`until`: alerts whose fault overlaps them)."""
    where = _filtered(who, since, until, state, kind, building_id, meter_id, flat_id)
    if sort == "id":
        rows, nxt = await fetch_page(pool, balance.ALERT_SUMMARIES, where, cursor, limit)
        return Page(items=[AlertPublic(**r) for r in rows], next_cursor=nxt)
    # keyset on (began_at, id), descending for -began
    op = ">" if sort == "began" else "<"
    if cursor is not None:
        t, last = decode_key(cursor, 2)
        if not last.isdigit():
            raise ApiError(400, "malformed cursor")
        where.conditions.append(
            f"(began_at, id) {op} ({where.param(key_time(t))}, {where.param(int(last))})"
        )
    sql = f"{balance.ALERT_SUMMARIES}{where.sql()} order by {_SORT_SQL[sort]}"
    rows = await pool.fetch(f"{sql} limit {where.param(limit + 1)}", *where.params)
    nxt = None
    if len(rows) > limit:
        rows = rows[:limit]
        nxt = encode_cursor(time_key(rows[-1]["began_at"]), rows[-1]["id"])
    return Page(items=[AlertPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/alerts/counts", response_model=AlertCounts)
async def alert_counts(
    pool: Pool,
    who: Reader,
    since: Since = None,
    until: Until = None,
    kind: str | None = None,
    building_id: int | None = None,
    flat_id: int | None = None,
) -> AlertCounts:
    """How many alerts there are per kind, open and in all, under the queue's filters."""
    where = _filtered(who, since, until, None, kind, building_id, None, flat_id)
    rows = await pool.fetch(
        f"""select kind, count(*) as total, count(*) filter (where state = 'open') as open
            from ({balance.ALERT_SUMMARIES}{where.sql()}) x group by kind order by kind""",
        *where.params,
    )
    buildings = await pool.fetch(
        f"""select building_id, count(*) as open from ({balance.ALERT_SUMMARIES}{where.sql()}) x
            where state = 'open' and building_id is not null group by building_id""",
        *where.params,
    )
    return AlertCounts(
        open_by_building={str(r["building_id"]): r["open"] for r in buildings},
        total=sum(r["total"] for r in rows),
        open=sum(r["open"] for r in rows),
        by_kind={r["kind"]: r["total"] for r in rows},
        open_by_kind={r["kind"]: r["open"] for r in rows if r["open"]},
    )


async def _summary(pool: asyncpg.Pool, who: Principal, alert_id: int) -> asyncpg.Record:
    where = _where(who).add("id = {}", alert_id)
    row = await pool.fetchrow(f"{balance.ALERT_SUMMARIES}{where.sql()}", *where.params)
    if row is None:
        raise not_found("alert")
    return row


def _from_points(
    name: str, unit: str | None, points: Points, resolution: str, tz: str
) -> EvidenceSeries:
    return EvidenceSeries(
        name=name, unit=unit, values=points.parsed(), partial=points.partial,
        **axis(points.start, resolution, tz),
    )  # fmt: skip


async def _evidence_series(
    pool: asyncpg.Pool, alert: asyncpg.Record, evidence: dict[str, Any]
) -> list[EvidenceSeries]:
    """The hourly series balance kept in the evidence (from ``series_from`` on); beside
    ``peers_predicted`` (what the meter's peers say it should have registered, in its
    unit) the meter's own use over the same hours (``meter_hourly``)."""
    start = evidence.get("series_from")
    if not isinstance(start, str):
        return []
    first = datetime.fromisoformat(start)
    unit = None
    if alert["meter_id"] is not None:
        unit = await pool.fetchval("select unit from meters where id = $1", alert["meter_id"])
    tz = await site_timezone(pool, alert["building_id"]) if alert["building_id"] else "UTC"
    out = []
    for name, values in evidence.items():
        if not isinstance(values, list) or len(values) < 2:
            continue
        if not all(v is None or isinstance(v, int | float) for v in values):
            continue
        in_unit = unit if name == "peers_predicted" else None
        out.append(
            EvidenceSeries(name=name, unit=in_unit, values=values, **axis(first, "hour", tz))
        )
        if name == "peers_predicted" and alert["meter_id"] is not None:
            used = await allocation.meter_series(
                pool, alert["meter_id"], first, first + timedelta(hours=len(values)), "hour", tz
            )
            out.append(_from_points("meter_hourly", unit, used, "hour", tz))
    return out


async def _context_series(pool: asyncpg.Pool, alert: asyncpg.Record) -> list[EvidenceSeries]:
    """The meter's use and the group's balance around the fault, from the stored series."""
    tz = await site_timezone(pool, alert["building_id"]) if alert["building_id"] else "UTC"
    end = min(alert["last_hour"] + AFTER, datetime.now(UTC))
    start = max(alert["began_at"] - BEFORE, end - LONGEST)
    resolution: Literal["hour", "day"] = "hour" if end - start <= timedelta(days=4) else "day"
    if resolution == "day":  # whole local days
        local = start.astimezone(ZoneInfo(tz))
        start = datetime.combine(local.date(), time(), local.tzinfo).astimezone(UTC)
    out = []
    if alert["meter_id"] is not None:
        unit = await pool.fetchval("select unit from meters where id = $1", alert["meter_id"])
        points = await allocation.meter_series(pool, alert["meter_id"], start, end, resolution, tz)
        out.append(_from_points("meter", unit, points, resolution, tz))
    if alert["group_id"] is not None:
        rows = [
            dict(r)
            for r in await balance.imbalance_series(pool, alert["group_id"], resolution, start, end)
        ]
        if rows:
            unit = rows[0]["unit"]
            times = [r["t"] for r in rows]
            for name, key in (
                ("balance_meter", "balance_value"),
                ("members", "members_value"),
                ("imbalance", "imbalance"),
                ("band_low", "band_low"),
                ("band_high", "band_high"),
            ):
                line = columns(times, rows, resolution, tz, (key,))
                out.append(EvidenceSeries(name=name, unit=unit, values=line.pop(key), **line))
    return out


async def _history(pool: asyncpg.Pool, alert: asyncpg.Record) -> list[AlertEvent]:
    """Opened by balance, then the operators' actions with their notes (the audit log),
    and a closing that no operator made (balance saw the fault end)."""
    events = [AlertEvent(at=alert["opened_at"], actor="balance", action="opened")]
    rows = await pool.fetch(
        """select at, actor, action, detail->>'note' as note from audit_log
           where target = $1
             and action in ('alert.acknowledge', 'alert.resolve', 'alert.dismiss')
           order by at, id""",
        f"alert:{alert['id']}",
    )
    names: dict[str, Literal["acknowledged", "resolved", "dismissed"]] = {
        "alert.acknowledge": "acknowledged",
        "alert.resolve": "resolved",
        "alert.dismiss": "dismissed",
    }
    events += [
        AlertEvent(at=r["at"], actor=r["actor"], action=names[r["action"]], note=r["note"] or "")
        for r in rows
    ]
    if alert["closed_at"] is not None and not any(
        e.action in ("resolved", "dismissed") for e in events
    ):
        actor = alert["resolved_by"] or "balance"
        events.append(AlertEvent(at=alert["closed_at"], actor=actor, action="closed"))
    return sorted(events, key=lambda e: e.at)


@router.get("/alerts/{alert_id}", response_model=AlertDetail)
async def get_alert(alert_id: AlertId, pool: Pool, who: Reader) -> AlertDetail:
    """One alert for its investigation: where and when (the fault's first hour, the hour
    it was detected), the rule and the one reason that fired, the evidence's values, the
    evidence as series (the meter's use and the group's balance with its band around the
    fault, and the series balance kept), and its history with who did what."""
    alert = await _summary(pool, who, alert_id)
    evidence = await balance.alert_evidence(pool, alert_id) or {}
    figures = {
        k: v
        for k, v in evidence.items()
        if not isinstance(v, list | dict)
        and k not in ("rule", "reason", "detected_hour", "series_from")
    }
    return AlertDetail(
        **alert,
        figures=figures,
        also_possible=[str(k) for k in evidence.get("also_possible", [])],
        series=[
            *await _context_series(pool, alert),
            *await _evidence_series(pool, alert, evidence),
        ],
        history=await _history(pool, alert),
        timezone=await site_timezone(pool, alert["building_id"]) if alert["building_id"] else "UTC",
    )


async def _act(
    request: Request,
    pool: Pool,
    who: Operator,
    alert_id: int,
    action: Literal["acknowledge", "resolve", "dismiss"],
    note: str,
) -> AlertPublic:
    """Ask balance (which alone writes alerts) to record the action, then audit it."""
    nats = request.app.state.nats
    if nats is None or not nats.is_connected:
        raise ApiError(503, "balance cannot be reached (no NATS connection)")
    ask = AlertAction(alert_id=alert_id, action=action, actor=who.actor)
    try:
        msg = await nats.request(
            subjects.BALANCE_ALERTS_API, ask.model_dump_json().encode(), timeout=BALANCE_TIMEOUT_S
        )
        reply = AlertActionReply.model_validate_json(msg.data)
    except (NatsTimeoutError, NoRespondersError) as exc:
        raise ApiError(503, "balance did not answer; try again", retry_after=5) from exc
    if not reply.found:
        raise not_found("alert")
    if not reply.ok:
        raise ApiError(502, f"balance refused the action: {reply.error}")
    async with pool.acquire() as conn, conn.transaction():
        await audit.record(conn, who.actor, f"alert.{action}", f"alert:{alert_id}", note=note)
    return AlertPublic(**await _summary(pool, who, alert_id))


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertPublic)
async def acknowledge(
    alert_id: AlertId, body: AlertNote, request: Request, pool: Pool, who: Operator
) -> AlertPublic:
    """Mark an alert as seen by this operator (it stays open)."""
    return await _act(request, pool, who, alert_id, "acknowledge", body.note)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertPublic)
async def resolve(
    alert_id: AlertId, body: AlertNote, request: Request, pool: Pool, who: Operator
) -> AlertPublic:
    """Close an alert with a note (e.g. after the meter was replaced); balance announces
    the closing."""
    return await _act(request, pool, who, alert_id, "resolve", body.note)


@router.post("/alerts/{alert_id}/dismiss", response_model=AlertPublic)
async def dismiss(
    alert_id: AlertId, body: AlertNote, request: Request, pool: Pool, who: Operator
) -> AlertPublic:
    """Close an alert as a false alarm, with a note; balance announces the closing as
    dismissed (for a faulty_sensor alert allocation measures its hours again)."""
    return await _act(request, pool, who, alert_id, "dismiss", body.note)
