"""Balance groups with balance's imbalance series, and the residents' group ranking.

The imbalance series and its normal band are balance's (``imbalance_series``, read
through :mod:`balans_db.queries.balance`): balance compares like with like (heat from
volume and ΔT where members are flow meters) and learns each group's band. The api
computes no imbalance of its own; where balance has no series it says so."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from balans_api.calendar import add_months, local_midnight
from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.fastjson import json_response
from balans_api.models import (
    IMBALANCE_VALUES,
    AlertSpan,
    BalanceGroupPublic,
    GroupLosses,
    ImbalanceSeries,
)
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.series import columns, site_timezone
from balans_api.timerange import Format, Resolution, Span, TimeRange, csv_response, span
from balans_api.visibility import check_building
from balans_db.queries import allocation, balance

router = APIRouter(tags=["balance"], responses=ERROR_RESPONSES)
Bounds = Annotated[Span, Depends(span)]

NO_SERIES = (
    "balance has no {resolution} series for this group in this range: it judges a group "
    "once the group has a balance meter and allocated consumption (hourly after each "
    "allocation, days and months as they complete)"
)


def _bucket_end(t: datetime, resolution: str, tz: str) -> datetime:
    if resolution == "hour":
        return t + timedelta(hours=1)
    day = t.astimezone(ZoneInfo(tz)).date()
    if resolution == "day":
        return local_midnight(day + timedelta(days=1), tz)
    return local_midnight(add_months(day.replace(day=1), 1), tz)


COMPLETE = 0.999  # a day or month whose hours balance has to this share is whole


def _point(row: Mapping[str, Any], resolution: str, tz: str, window: TimeRange) -> dict[str, Any]:
    """A point with its percentage, quantities to 0.001 of the unit, and partial where
    its bucket ends after ``to`` or now (balance's buckets start inside the range)."""
    value = row["balance_value"]
    end = _bucket_end(row["t"], resolution, tz)
    missing_hours = resolution != "hour" and row["coverage"] < COMPLETE
    return {
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()},
        "imbalance_pct": round(100.0 * row["imbalance"] / value, 2) if value else None,
        "partial": missing_hours or end > min(window.end, datetime.now(UTC)),
    }


def _span(row: Mapping[str, Any]) -> AlertSpan:
    now = datetime.now(UTC)
    until = now if row["state"] == "open" or row["last_hour"] is None else row["last_hour"]
    return AlertSpan(
        id=row["id"],
        kind=row["kind"],
        state=row["state"],
        began=row["first_hour"],
        until=min(until, now),
        began_before=bool(row["began_before"]),
        reason_code=row["reason_code"],
    )


def _pct(share: float | None) -> float | None:
    return None if share is None else round(100.0 * share, 2)


def _losses(row: Mapping[str, Any] | None) -> GroupLosses | None:
    if row is None:
        return None
    return GroupLosses(
        unit=row["unit"],
        balance_value=round(row["balance_value"], 3),
        members_value=round(row["members_value"], 3),
        loss=round(row["loss"], 3),
        loss_pct=_pct(row["loss_share"]),
        loss_pct_of_building=_pct(row["loss_share_of_building"]),
        expected_loss=round(row["expected_loss"], 3),
        target_pct=_pct(row["loss_target_share"]),
        hours=row["hours"],
    )


class RankedGroup(BaseModel):
    rank: int
    group_id: int
    name: str
    flats: int
    area_m2: float
    kwh: float
    kwh_per_m2: float


class Ranking(BaseModel):
    building_id: int
    grouping: Literal["entrance", "riser"]
    groups: list[RankedGroup]


@router.get("/balance-groups", response_model=Page[BalanceGroupPublic])
async def list_groups(
    pool: Pool,
    _: Staff,
    building_id: int | None = None,
    utility: str | None = None,
    cursor: Cursor = None,
    limit: Limit = 100,
) -> Page:
    """Balance groups (nested through parent_id) with their member meters."""
    where = Where().add("g.building_id = {}", building_id).add("g.utility = {}", utility)
    rows, nxt = await fetch_page(pool, balance.GROUPS_WITH_MEMBERS, where, cursor, limit, "g.id")
    return Page(items=[BalanceGroupPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/balance-groups/{group_id}/imbalance", response_model=ImbalanceSeries)
async def imbalance(
    group_id: int,
    pool: Pool,
    _: Staff,
    bounds: Bounds,
    resolution: Resolution = "day",
    format: Format = "json",
) -> Response:
    """balance's imbalance series of the group per hour, day or month, with the normal
    band balance learned for it; ``note`` says why the series is empty."""
    group = await balance.group(pool, group_id)
    if group is None:
        raise not_found("balance group")
    tz = await site_timezone(pool, group["building_id"]) if group["building_id"] else "UTC"
    window = bounds.resolve(tz)
    rows = await balance.imbalance_series(pool, group_id, resolution, window.start, window.end)
    points = [_point(r, resolution, tz, window) for r in rows]
    spans = await balance.alert_spans(pool, group_id, window.start, window.end)
    losses = await balance.group_losses(pool, group_id, window.start, window.end)
    if format == "csv":
        fields = ("t", *IMBALANCE_VALUES[:-1], "night", "coverage", "partial")
        return csv_response(
            fields,
            ([p[f] for f in fields] for p in points),
            f"group-{group_id}-imbalance-{resolution}",
        )
    times = [p["t"] for p in points]
    return json_response(
        ImbalanceSeries(
            group_id=group_id,
            unit=rows[0]["unit"] if rows else None,
            **columns(times, points, resolution, tz, IMBALANCE_VALUES, ("night", "partial")),
            note=None if rows else NO_SERIES.format(resolution=resolution),
            alert_spans=[_span(r) for r in spans],
            losses=_losses(losses),
        )
    )


@router.get("/buildings/{building_id}/ranking", response_model=Ranking)
async def ranking(
    building_id: int,
    pool: Pool,
    who: Reader,
    bounds: Bounds,
    grouping: Literal["entrance", "riser"] = "riser",
) -> Ranking:
    """Residents' comparison: the building's risers or entrances ranked by heat per m²
    (lowest first). Aggregates only, so residents of the building may see it."""
    check_building(who, building_id)
    window = bounds.resolve(await site_timezone(pool, building_id))
    rows = await allocation.heat_by_flat_group(
        pool, building_id, grouping, window.start, window.end
    )
    ranked = sorted(rows, key=lambda r: r["kwh"] / r["area_m2"] if r["area_m2"] else 0.0)
    return Ranking(
        building_id=building_id,
        grouping=grouping,
        groups=[
            RankedGroup(
                rank=i,
                group_id=r["group_id"],
                name=r["name"],
                flats=r["flats"],
                area_m2=r["area_m2"],
                kwh=r["kwh"],
                kwh_per_m2=r["kwh"] / r["area_m2"] if r["area_m2"] else 0.0,
            )
            for i, r in enumerate(ranked, start=1)
        ],
    )
