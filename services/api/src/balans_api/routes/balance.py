"""Balance groups with balance's imbalance series, and the residents' group ranking.

The imbalance series and its normal band are balance's (``imbalance_series``, read
through :mod:`balans_db.queries.balance`): balance compares like with like (heat from
volume and ΔT where members are flow meters) and learns each group's band. The api
computes no imbalance of its own; where balance has no series it says so."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.models import BalanceGroupPublic, ImbalancePoint, ImbalanceSeries
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.timerange import Resolution, TimeRange, time_range
from balans_api.visibility import check_building
from balans_db.queries import allocation, balance

router = APIRouter(tags=["balance"], responses=ERROR_RESPONSES)
Span = Annotated[TimeRange, Depends(time_range)]

NO_SERIES = (
    "balance has no {resolution} series for this group in this range: it judges a group "
    "once the group has a balance meter and allocated consumption (hourly after each "
    "allocation, days and months as they complete)"
)


def _with_pct(row: Mapping[str, Any]) -> dict[str, Any]:
    value = row["balance_value"]
    return {**row, "imbalance_pct": 100.0 * row["imbalance"] / value if value else None}


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
    group_id: int, pool: Pool, _: Staff, span: Span, resolution: Resolution = "day"
) -> ImbalanceSeries:
    """balance's imbalance series of the group per hour, day or month, with the normal
    band balance learned for it; ``note`` says why ``points`` is empty."""
    if await balance.group(pool, group_id) is None:
        raise not_found("balance group")
    rows = await balance.imbalance_series(pool, group_id, resolution, span.start, span.end)
    return ImbalanceSeries(
        group_id=group_id,
        unit=rows[0]["unit"] if rows else None,
        resolution=resolution,
        points=[ImbalancePoint(**_with_pct(r)) for r in rows],
        note=None if rows else NO_SERIES.format(resolution=resolution),
    )


@router.get("/buildings/{building_id}/ranking", response_model=Ranking)
async def ranking(
    building_id: int,
    pool: Pool,
    who: Reader,
    span: Span,
    grouping: Literal["entrance", "riser"] = "riser",
) -> Ranking:
    """Residents' comparison: the building's risers or entrances ranked by heat per m²
    (lowest first). Aggregates only, so residents of the building may see it."""
    check_building(who, building_id)
    rows = await allocation.heat_by_flat_group(pool, building_id, grouping, span.start, span.end)
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
