"""Equipment cost of the five metering variants and the payback of per-flat metering.

Pure functions over configurable prices (docs/domain.md, "Equipment cost"). Quantities
follow the deck's tables:

- ``1a`` / ``1c``: one multi-channel D100FC per landing (entrance x floor), more when a
  landing has more flats than a module has inputs; a heat meter (1a) or a hot-water
  meter with pulse output (1c) per flat;
- ``1b``: per flat a D100FC, a water meter and two DTI2 sensors;
- ``2b``: per riser a D100FC, a flow meter and two DTI2 sensors;
- ``2a``: per riser a flow meter and ``floors + 1`` DTI2 sensors (each sensor between two
  floors serves the flat above as exit and the flat below as entry), read by D100FC
  modules of two temperature inputs each: ``ceil((floors + 1) / 2)`` per riser;
- one J100G concentrator per 720 meters (the deck's limit), at least one.

Payback: a flat's heating cost for a season is Gcal per month x season months x tariff;
metering saves ``saving`` of it, so equipment costing C pays back in
C / (season cost x saving) seasons.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from balans_pricing.money import money, whole

Variant = Literal["1a", "1b", "1c", "2b", "2a"]
VARIANTS: tuple[Variant, ...] = ("1a", "1b", "1c", "2b", "2a")
METERS_PER_CONCENTRATOR = 720

VARIANT_TITLES: dict[str, str] = {
    "1a": "horizontal, heat meters",
    "1b": "horizontal, distributors",
    "1c": "horizontal, water meters",
    "2b": "vertical, riser distributors",
    "2a": "vertical, per-flat distributors",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prices(_Frozen):
    """Unit prices in MDL (defaults: the deck's)."""

    d100fc: Decimal = Field(default=Decimal(996), ge=0, description="radio module D100FC")
    heat_meter: Decimal = Field(default=Decimal(1800), ge=0, description="heat meter, 1 kWh/pulse")
    pulse_meter: Decimal = Field(
        default=Decimal(370), ge=0, description="mechanical water/flow meter with pulse output"
    )
    dti2: Decimal = Field(default=Decimal(367), ge=0, description="temperature sensor DTI2")
    concentrator: Decimal = Field(default=Decimal(4284), ge=0, description="concentrator J100G")


class Building(_Frozen):
    """The shape of a block; the deck's reference is 100 flats, 3 entrances, 10 floors,
    34 risers."""

    flats: int = Field(default=100, gt=0)
    entrances: int = Field(default=3, gt=0)
    floors: int = Field(default=10, gt=0)
    risers: int = Field(default=34, gt=0)
    module_inputs: int = Field(
        default=4, ge=1, le=6, description="pulse inputs used per shared D100FC"
    )
    radiators: int | None = Field(
        default=None, gt=0, description="radiators in the block; default: one per riser and floor"
    )

    @property
    def radiator_count(self) -> int:
        return self.radiators if self.radiators is not None else self.risers * self.floors


class Item(_Frozen):
    """One row of a bill of materials."""

    name: str
    quantity: int
    unit_price: Decimal
    amount: Decimal


class VariantCost(_Frozen):
    """The bill of materials of one variant and its totals."""

    variant: Variant
    title: str
    items: tuple[Item, ...]
    total: Decimal
    per_flat: Decimal = Field(description="total / flats, rounded to whole MDL")
    per_radiator: Decimal = Field(description="total / radiators, rounded to whole MDL")


def _quantities(variant: Variant, b: Building) -> list[tuple[str, str, int]]:
    """(item name, price field, quantity) for the variant, before the concentrator."""
    landings = b.entrances * b.floors
    flats_per_landing = math.ceil(b.flats / landings)
    shared_modules = landings * math.ceil(flats_per_landing / b.module_inputs)
    sensors_per_riser = b.floors + 1
    if variant == "1a":
        return [
            ("D100FC, multi-channel", "d100fc", shared_modules),
            ("heat meter 1 kWh/pulse", "heat_meter", b.flats),
        ]
    if variant == "1b":
        return [
            ("D100FC, flat distributor", "d100fc", b.flats),
            ("meter with pulse output", "pulse_meter", b.flats),
            ("DTI2 sensor", "dti2", 2 * b.flats),
        ]
    if variant == "1c":
        return [
            ("D100FC, multi-channel", "d100fc", shared_modules),
            ("meter with pulse output", "pulse_meter", b.flats),
        ]
    if variant == "2b":
        return [
            ("D100FC, riser distributor", "d100fc", b.risers),
            ("meter with pulse output", "pulse_meter", b.risers),
            ("DTI2 sensor", "dti2", 2 * b.risers),
        ]
    return [
        ("D100FC, flat distributor", "d100fc", b.risers * math.ceil(sensors_per_riser / 2)),
        ("meter with pulse output", "pulse_meter", b.risers),
        ("DTI2 sensor", "dti2", b.risers * sensors_per_riser),
    ]


def variant_cost(variant: Variant, building: Building, prices: Prices) -> VariantCost:
    """Bill of materials and totals of one variant."""
    rows = _quantities(variant, building)
    meters = sum(q for _, field, q in rows if field in ("heat_meter", "pulse_meter"))
    rows.append(
        ("concentrator J100G", "concentrator", max(1, math.ceil(meters / METERS_PER_CONCENTRATOR)))
    )
    items = tuple(
        Item(
            name=name,
            quantity=qty,
            unit_price=getattr(prices, field),
            amount=getattr(prices, field) * qty,
        )
        for name, field, qty in rows
    )
    total = sum((item.amount for item in items), Decimal(0))
    return VariantCost(
        variant=variant,
        title=VARIANT_TITLES[variant],
        items=items,
        total=total,
        per_flat=whole(total / building.flats),
        per_radiator=whole(total / building.radiator_count),
    )


def estimate(building: Building, prices: Prices | None = None) -> list[VariantCost]:
    """Costs of all five variants, in the deck's order."""
    chosen = prices or Prices()
    return [variant_cost(v, building, chosen) for v in VARIANTS]


MAX_EQUIPMENT_COST = Decimal(10) ** 9  # MDL: far above any building, far below Decimal's limits


class Heating(_Frozen):
    """What a flat's heat costs in a season (defaults: the deck's figures)."""

    tariff_per_gcal: Decimal = Field(
        default=Decimal(1122), gt=0, le=Decimal(10) ** 6, description="MDL per Gcal"
    )
    season_months: Decimal = Field(
        default=Decimal(5), gt=0, le=12, description="a heating season lasts a year at most"
    )
    gcal_per_month: dict[int, Decimal] = Field(
        default_factory=lambda: {
            1: Decimal("1.0"),
            2: Decimal("1.35"),
            3: Decimal("1.6"),
            4: Decimal("2.5"),
        },
        description="by rooms: the deck's 1, 1.2-1.5 and 1.5-1.7 (midpoints), and 2.5 for "
        "4 rooms as implied by its 5610 MDL at 40 %",
    )
    radiators_by_rooms: dict[int, int] = Field(
        default_factory=lambda: {1: 2, 2: 3, 3: 4, 4: 5},
        description="the deck's 2 radiators for 1 room ... 5 for 4 rooms",
    )


class Payback(_Frozen):
    """Payback of metering equipment for one flat size."""

    rooms: int
    gcal_per_month: Decimal
    saving: Decimal
    season_cost: Decimal = Field(description="MDL for the season without metering")
    saving_per_season: Decimal
    allowed_cost_one_season: Decimal = Field(
        description="the most equipment may cost to pay back in one season"
    )
    equipment_cost: Decimal | None = None
    payback_seasons: Decimal | None = Field(
        default=None, description="equipment_cost / saving_per_season"
    )
    payback_months_if_empty: Decimal | None = Field(
        default=None, description="months of heating to pay back when the flat uses no heat at all"
    )


def payback(
    rooms: int,
    saving: Decimal,
    heating: Heating | None = None,
    equipment_cost: Decimal | None = None,
) -> Payback:
    """Payback of ``equipment_cost`` (or the allowed cost for one season) for a flat."""
    h = heating or Heating()
    if not Decimal(0) < saving <= Decimal(1):
        raise ValueError(f"saving must be in (0, 1], got {saving}")
    if rooms not in h.gcal_per_month:
        raise ValueError(f"no consumption known for {rooms}-room flats")
    monthly_cost = h.gcal_per_month[rooms] * h.tariff_per_gcal
    season_cost = money(monthly_cost * h.season_months)
    per_season = money(season_cost * saving)
    if per_season <= 0:
        raise ValueError(
            f"a saving of {saving} is worth less than 0.01 MDL a season: nothing pays back"
        )
    seasons = months_empty = None
    if equipment_cost is not None:
        if not Decimal(0) <= equipment_cost <= MAX_EQUIPMENT_COST:
            raise ValueError(f"equipment cost must be in [0, {MAX_EQUIPMENT_COST}] MDL")
        seasons = (equipment_cost / per_season).quantize(Decimal("0.01"))
        months_empty = (equipment_cost / monthly_cost).quantize(Decimal("0.1"))
    return Payback(
        rooms=rooms,
        gcal_per_month=h.gcal_per_month[rooms],
        saving=saving,
        season_cost=season_cost,
        saving_per_season=per_season,
        allowed_cost_one_season=per_season,
        equipment_cost=equipment_cost,
        payback_seasons=seasons,
        payback_months_if_empty=months_empty,
    )
