"""Fairness report: what each flat pays when a building's heat is shared by floor area
versus by metered (allocated) heat, and how winners and losers are distributed.

The deck's experiment (layout 1c): flats of average consumption pay the same, low
consumers about half, high consumers about 50 % more. The report groups flats into
thirds by heat per m2 and gives each third's mean ratio metered / area-based.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from balans_pricing.money import KWH_PER_GCAL, money

UNCHANGED_BAND = (Decimal("0.9"), Decimal("1.1"))
RATIO_BUCKETS = (
    Decimal("0.5"),
    Decimal("0.75"),
    Decimal("0.9"),
    Decimal("1.1"),
    Decimal("1.25"),
    Decimal("1.5"),
)
RATIO_STEP = Decimal("0.001")


class FlatHeat(BaseModel):
    """A flat's area and the heat allocated to it in the period (kWh)."""

    model_config = ConfigDict(frozen=True)

    flat_id: int
    number: str
    area_m2: Decimal
    heat_kwh: Decimal


class FlatFairness(BaseModel):
    """One flat's bill both ways."""

    model_config = ConfigDict(frozen=True)

    flat_id: int
    number: str
    area_m2: Decimal
    metered_kwh: Decimal
    area_based_kwh: Decimal
    metered_mdl: Decimal
    area_based_mdl: Decimal
    ratio: Decimal
    group: str


class FairnessReport(BaseModel):
    """Per-flat comparison and its summary."""

    model_config = ConfigDict(frozen=True)

    price_per_gcal: Decimal
    building_kwh: Decimal
    flats: list[FlatFairness]
    winners: int
    unchanged: int
    losers: int
    mean_ratio_by_third: dict[str, Decimal]
    ratio_histogram: dict[str, int]


def fairness_report(flats: list[FlatHeat], price_per_gcal: Decimal) -> FairnessReport:
    """Compare area-based and metered bills; the building's heat is the flats' sum."""
    if not flats:
        raise ValueError("no flats to compare")
    total_kwh = sum((f.heat_kwh for f in flats), Decimal(0))
    total_area = sum((f.area_m2 for f in flats), Decimal(0))
    per_kwh = price_per_gcal / KWH_PER_GCAL
    ranked = sorted(flats, key=lambda f: f.heat_kwh / f.area_m2)
    group_of = {
        f.flat_id: ("low", "average", "high")[min(2, 3 * i // len(ranked))]
        for i, f in enumerate(ranked)
    }
    rows = []
    for f in flats:
        area_based = total_kwh * f.area_m2 / total_area
        ratio = f.heat_kwh / area_based if area_based else Decimal(1)
        rows.append(
            FlatFairness(
                flat_id=f.flat_id,
                number=f.number,
                area_m2=f.area_m2,
                metered_kwh=f.heat_kwh,
                area_based_kwh=area_based.quantize(RATIO_STEP),
                metered_mdl=money(f.heat_kwh * per_kwh),
                area_based_mdl=money(area_based * per_kwh),
                ratio=ratio.quantize(RATIO_STEP),
                group=group_of[f.flat_id],
            )
        )
    low, high = UNCHANGED_BAND
    means = {}
    for group in ("low", "average", "high"):
        ratios = [r.ratio for r in rows if r.group == group]
        if ratios:
            means[group] = (sum(ratios, Decimal(0)) / len(ratios)).quantize(RATIO_STEP)
    return FairnessReport(
        price_per_gcal=price_per_gcal,
        building_kwh=total_kwh,
        flats=rows,
        winners=sum(r.ratio < low for r in rows),
        unchanged=sum(low <= r.ratio <= high for r in rows),
        losers=sum(r.ratio > high for r in rows),
        mean_ratio_by_third=means,
        ratio_histogram=_histogram([r.ratio for r in rows]),
    )


def _histogram(ratios: list[Decimal]) -> dict[str, int]:
    """Counts of flats per ratio bucket [lower, upper), labelled "lower-upper"."""
    lowers = (Decimal(0), *RATIO_BUCKETS)
    counts = {}
    for n, lower in enumerate(lowers):
        upper = RATIO_BUCKETS[n] if n < len(RATIO_BUCKETS) else None
        label = f"{lower}-{upper}" if upper is not None else f">={lower}"
        counts[label] = sum(lower <= r and (upper is None or r < upper) for r in ratios)
    return counts
