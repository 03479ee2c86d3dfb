"""Balance groups with their imbalance series, and the residents' group ranking.

The imbalance is computed here from ``meter_consumption`` (balance meter minus the sum
of its members), so it is available for any group and any resolution."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from balans_api.deps import Pool, Reader, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError, not_found
from balans_api.models import BalanceGroupPublic, ImbalancePoint, ImbalanceSeries
from balans_api.paging import Cursor, Limit, Page, Where, fetch_page
from balans_api.series import site_timezone
from balans_api.timerange import Resolution, TimeRange, time_range
from balans_api.visibility import check_building

router = APIRouter(tags=["balance"], responses=ERROR_RESPONSES)
Span = Annotated[TimeRange, Depends(time_range)]

DEFAULT_BAND_PCT = 10.0

_GROUPS = """
select g.id, g.name, g.utility, g.kind, g.building_id, g.parent_id, g.balance_meter_id,
       coalesce(array(select meter_id from balance_group_members m
                      where m.group_id = g.id order by meter_id), '{}') as member_meter_ids
from balance_groups g
"""

_IMBALANCE = """
with buckets as (
    select date_trunc($4, mc.hour, $5) as t,
           sum(mc.value) filter (where mc.meter_id = $6) as balance_value,
           sum(mc.value) filter (where mc.meter_id <> $6) as members_value
    from meter_consumption mc
    where mc.hour >= $2 and mc.hour < $3
      and (mc.meter_id = $6 or mc.meter_id in
           (select meter_id from balance_group_members where group_id = $1))
    group by 1
)
select t, coalesce(balance_value, 0) as balance_value,
       coalesce(members_value, 0) as members_value
from buckets order by t
"""

# balance's own series (with its learned bands) where it has computed them
_STORED = """
select period_start as t, unit, balance_value, subscribers_value as members_value,
       imbalance, band_low, band_high
from imbalance_series
where group_id = $1 and resolution = $2 and period_start >= $3 and period_start < $4
order by period_start
"""


async def _check_comparable(
    pool: Pool, group_id: int, balance_meter_id: int | None, unit: str | None
) -> None:
    """A plain difference needs a balance meter and members in its unit; otherwise (a
    heat meter over riser flow meters) only balance's own series is meaningful."""
    if balance_meter_id is None:
        raise ApiError(409, "this group has no balance meter; balance has no series for it yet")
    units = await pool.fetch(
        """select distinct m.unit from balance_group_members g join meters m on m.id = g.meter_id
           where g.group_id = $1""",
        group_id,
    )
    if any(u["unit"] != unit for u in units):
        raise ApiError(
            409,
            f"members are not all in {unit}: the imbalance needs balance's series "
            "(heat from volume and ΔT), which it has not computed yet",
        )


def _with_pct(row: Mapping[str, Any]) -> dict[str, Any]:
    balance = row["balance_value"]
    return {**row, "imbalance_pct": 100.0 * row["imbalance"] / balance if balance else None}


_RANKING = """
select g.name as name, g.id as group_id, count(distinct f.id) as flats,
       sum(f.area_m2)::float8 as area_m2, coalesce(sum(h.kwh), 0) as kwh
from {groups} g
join flats f on {join}
left join (select flat_id, sum(total_kwh) as kwh from heat_allocation
           where building_id = $1 and hour >= $2 and hour < $3 group by flat_id) h
  on h.flat_id = f.id
where g.building_id = $1
group by g.id, g.name
"""

_GROUPINGS = {
    "entrance": (
        "(select id, building_id, 'Entrance ' || number as name from entrances)",
        "f.entrance_id = g.id",
    ),
    "riser": (
        "(select id, building_id, 'Riser ' || number as name from risers)",
        "f.id in (select flat_id from radiators r where r.riser_id = g.id)",
    ),
}


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
    rows, nxt = await fetch_page(pool, _GROUPS, where, cursor, limit, "g.id")
    return Page(items=[BalanceGroupPublic(**r) for r in rows], next_cursor=nxt)


@router.get("/balance-groups/{group_id}/imbalance", response_model=ImbalanceSeries)
async def imbalance(
    group_id: int,
    pool: Pool,
    _: Staff,
    span: Span,
    resolution: Resolution = "day",
    band_pct: float = DEFAULT_BAND_PCT,
) -> ImbalanceSeries:
    """Balance meter vs the sum of members per hour, day or month, with the normal band."""
    group = await pool.fetchrow(
        """select g.building_id, g.balance_meter_id, m.unit from balance_groups g
           left join meters m on m.id = g.balance_meter_id where g.id = $1""",
        group_id,
    )
    if group is None:
        raise not_found("balance group")
    tz = await site_timezone(pool, group["building_id"]) if group["building_id"] else "UTC"
    stored = await pool.fetch(_STORED, group_id, resolution, span.start, span.end)
    if stored:
        return ImbalanceSeries(
            group_id=group_id,
            unit=stored[0]["unit"],
            resolution=resolution,
            source="balance",
            band_pct=band_pct,
            points=[ImbalancePoint(**_with_pct(r)) for r in stored],
        )
    await _check_comparable(pool, group_id, group["balance_meter_id"], group["unit"])
    rows = await pool.fetch(
        _IMBALANCE, group_id, span.start, span.end, resolution, tz, group["balance_meter_id"]
    )
    points = [
        ImbalancePoint(**_with_pct({**r, "imbalance": r["balance_value"] - r["members_value"]}))
        for r in rows
    ]
    return ImbalanceSeries(
        group_id=group_id,
        unit=group["unit"],
        resolution=resolution,
        source="computed",
        band_pct=band_pct,
        points=points,
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
    groups, join = _GROUPINGS[grouping]
    rows = await pool.fetch(
        _RANKING.format(groups=groups, join=join), building_id, span.start, span.end
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
