"""The estimator's report: variants, their bills of materials and payback, as data and text."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from balans_pricing.estimator import (
    Building,
    Heating,
    Payback,
    Prices,
    VariantCost,
    estimate,
    payback,
)

VERTICAL = ("2a", "2b")


class FlatPayback(BaseModel):
    """Payback for one flat size: the allowed cost, and each variant's cost and seasons."""

    model_config = ConfigDict(frozen=True)

    rooms: int
    radiators: int
    allowed_cost_one_season: Decimal
    equipment_cost: dict[str, Decimal]
    payback_seasons: dict[str, Decimal]


class EstimateReport(BaseModel):
    """Everything ``balans estimate`` prints."""

    model_config = ConfigDict(frozen=True)

    building: Building
    prices: Prices
    heating: Heating
    saving: Decimal
    variants: list[VariantCost]
    payback: list[FlatPayback]


def flat_equipment_cost(variant: VariantCost, radiators: int) -> Decimal:
    """A flat's share: per radiator on vertical layouts (the deck's 2102/3153/4204 for
    2a), per flat on horizontal ones."""
    if variant.variant in VERTICAL:
        return variant.per_radiator * radiators
    return variant.per_flat


def build_report(
    building: Building, prices: Prices, heating: Heating, saving: Decimal
) -> EstimateReport:
    """Costs of the five variants and the payback of each for every flat size."""
    variants = estimate(building, prices)
    rows = []
    for rooms, radiators in sorted(heating.radiators_by_rooms.items()):
        costs = {v.variant: flat_equipment_cost(v, radiators) for v in variants}
        paybacks: dict[str, Payback] = {
            name: payback(rooms, saving, heating, cost) for name, cost in costs.items()
        }
        rows.append(
            FlatPayback(
                rooms=rooms,
                radiators=radiators,
                allowed_cost_one_season=payback(rooms, saving, heating).allowed_cost_one_season,
                equipment_cost=costs,
                payback_seasons={
                    name: p.payback_seasons
                    for name, p in paybacks.items()
                    if p.payback_seasons is not None
                },
            )
        )
    return EstimateReport(
        building=building,
        prices=prices,
        heating=heating,
        saving=saving,
        variants=variants,
        payback=rows,
    )


def grouped(amount: Decimal) -> str:
    """214164 -> '214 164' (the deck's thousands separator)."""
    text = f"{amount:,}"
    return text.replace(",", " ")


def render_text(report: EstimateReport) -> str:
    """A plain-text report for a terminal."""
    b = report.building
    out = [
        f"Building: {b.flats} flats, {b.entrances} entrances, {b.floors} floors, "
        f"{b.risers} risers, {b.radiator_count} radiators (prices in MDL)",
        "",
    ]
    for v in report.variants:
        out.append(f"{v.variant}  {v.title}")
        for item in v.items:
            out.append(
                f"    {item.name:<28} {item.quantity:>5} x {grouped(item.unit_price):>7} = "
                f"{grouped(item.amount):>9}"
            )
        out.append(
            f"    {'total':<28} {grouped(v.total):>27}   ({grouped(v.per_flat)}/flat, "
            f"{grouped(v.per_radiator)}/radiator)"
        )
    h = report.heating
    out += [
        "",
        f"Payback at {report.saving:%} saving, {grouped(h.tariff_per_gcal)} MDL/Gcal, "
        f"{h.season_months}-month season (seasons per variant)",
        f"    {'rooms':<6}{'allowed for 1 season':>22}  "
        + "  ".join(f"{v.variant:>6}" for v in report.variants),
    ]
    for row in report.payback:
        out.append(
            f"    {row.rooms:<6}{grouped(row.allowed_cost_one_season):>22}  "
            + "  ".join(f"{row.payback_seasons[v.variant]:>6}" for v in report.variants)
        )
    return "\n".join(out)
