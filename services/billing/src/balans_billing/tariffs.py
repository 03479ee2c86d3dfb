"""Tariffs as validated, versioned data (docs/domain.md, "Tariffs and billing").

A tariff prices one utility of one supplier from ``effective_from`` (inclusive) to
``effective_to`` (exclusive, open when null). It has up to five kinds of charge:

- a fixed charge per account and month;
- a capacity charge per kW of connected load or per m2 of the flat, and month;
- a consumption charge in progressive blocks: a price per billing unit in each block,
  block bounds counted per account, per resident or per m2 of the flat, and per month;
- an operations charge per metering point and month, independent of consumption;
- taxes, each a rate on the sum of the utility's charges.

Validation refuses blocks that overlap, leave a gap, do not start at 0 or end bounded
(consumption above the last bound would have no price), negative prices, and units
that do not fit the utility.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Utility = Literal["heat", "hot_water", "cold_water", "gas", "electricity"]
BillingUnit = Literal["Gcal", "kWh", "m3"]
BlockBasis = Literal["account", "resident", "m2"]
CapacityBasis = Literal["kW", "m2"]

UNITS_OF_UTILITY: dict[str, tuple[str, ...]] = {
    "heat": ("Gcal", "kWh"),
    "hot_water": ("m3",),
    "cold_water": ("m3",),
    "gas": ("m3",),
    "electricity": ("kWh",),
}
"""Billing units a utility may be priced in (heat is measured in kWh, priced in Gcal)."""

MEASURED_UNIT = {"Gcal": "kWh", "kWh": "kWh", "m3": "m3"}
"""The unit consumption is stored in, for each billing unit."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Block(_Strict):
    """One step of a progressive consumption charge: [from_qty, to_qty) at ``price``."""

    from_qty: Decimal = Field(ge=0, description="Lower bound, per basis unit and month.")
    to_qty: Decimal | None = Field(
        default=None, description="Upper bound; null for the last block."
    )
    price: Decimal = Field(ge=0, description="MDL per billing unit.")


class Capacity(_Strict):
    """A charge for connected capacity: per kW of connected load or per m2, and month."""

    basis: CapacityBasis
    price: Decimal = Field(ge=0, description="MDL per kW (or m2) and month.")


class Tax(_Strict):
    """A tax as a rate on the sum of the utility's charges (0.08 = 8 %)."""

    name: str = Field(min_length=1)
    rate: Decimal = Field(ge=0, le=1)


class TariffSpec(_Strict):
    """One version of a supplier's tariff for one utility."""

    utility: Utility
    supplier: str = Field(default="default", min_length=1)
    unit: BillingUnit
    effective_from: date
    effective_to: date | None = None
    currency: Literal["MDL"] = "MDL"
    fixed_per_month: Decimal = Field(
        default=Decimal(0), ge=0, description="MDL per account and month."
    )
    capacity: Capacity | None = None
    block_basis: BlockBasis = "account"
    blocks: tuple[Block, ...] = Field(min_length=1)
    operations_per_point_month: Decimal = Field(
        default=Decimal(0), ge=0, description="MDL per metering point and month."
    )
    taxes: tuple[Tax, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> TariffSpec:
        if self.unit not in UNITS_OF_UTILITY[self.utility]:
            allowed = ", ".join(UNITS_OF_UTILITY[self.utility])
            raise ValueError(f"{self.utility} is billed in {allowed}, not {self.unit}")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        _check_blocks(self.blocks)
        return self

    def in_force_on(self, day: date) -> bool:
        """Whether this version applies on ``day``."""
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)

    def overlaps(self, other: TariffSpec) -> bool:
        """Whether the two versions' effective periods share a day."""
        far = date.max
        return self.effective_from < (other.effective_to or far) and other.effective_from < (
            self.effective_to or far
        )


def _check_blocks(blocks: tuple[Block, ...]) -> None:
    """Blocks must tile [0, infinity) exactly: start at 0, meet end to start, end unbounded."""
    if blocks[0].from_qty != 0:
        raise ValueError(f"the first block must start at 0, not {blocks[0].from_qty}")
    for n, (block, following) in enumerate(pairwise(blocks), start=1):
        if block.to_qty is None:
            raise ValueError(f"block {n} is unbounded but block {n + 1} follows it")
        if block.to_qty <= block.from_qty:
            raise ValueError(f"block {n} ends at {block.to_qty}, not after its start")
        if following.from_qty < block.to_qty:
            raise ValueError(
                f"blocks {n} and {n + 1} overlap ({following.from_qty} < {block.to_qty})"
            )
        if following.from_qty > block.to_qty:
            raise ValueError(
                f"gap between blocks {n} and {n + 1} ({block.to_qty}..{following.from_qty})"
            )
    if blocks[-1].to_qty is not None:
        raise ValueError(f"the last block must be unbounded; it ends at {blocks[-1].to_qty}")
