"""Pricing one account's use of one utility with one tariff: pure, no I/O.

Each charge becomes one :class:`Line`; taxes are lines too, so an invoice's total is
the sum of its lines (rounding rules in :mod:`balans_pricing.money`).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from balans_billing.tariffs import MEASURED_UNIT, Capacity, TariffSpec
from balans_pricing.money import money, quantity, to_billing_unit


class Line(BaseModel):
    """One line of an invoice: ``amount`` = ``quantity`` x ``unit_price`` rounded to 0.01."""

    model_config = ConfigDict(frozen=True)

    utility: str
    code: str = Field(description="fixed, capacity, block_<n>, operations, tax_<name>")
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal


class AccountFacts(BaseModel):
    """What a tariff needs to know about an account besides its consumption."""

    model_config = ConfigDict(frozen=True)

    residents: int = Field(ge=0)
    area_m2: Decimal = Field(gt=0)
    metering_points: int = Field(ge=0, description="of this utility, for the operations charge")
    connected_kw: Decimal | None = Field(default=None, ge=0)


class UsageError(ValueError):
    """The account lacks a fact the tariff needs (e.g. connected load for a kW charge)."""


def price_usage(
    tariff: TariffSpec, measured: Decimal, facts: AccountFacts, months: Decimal | int
) -> list[Line]:
    """Lines for ``measured`` (kWh or m3, as stored) over ``months`` months: whole months, or
    an account's share of them (its days / the period's days) when it held the flat for
    part of the period; monthly charges, capacity and block bounds are prorated by it."""
    months = Decimal(months)
    utility = tariff.utility
    lines: list[Line] = []
    if tariff.fixed_per_month:
        lines.append(
            _line(
                utility, "fixed", "fixed charge", quantity(months), "month", tariff.fixed_per_month
            )
        )
    if tariff.capacity is not None:
        lines.append(_capacity_line(tariff.utility, tariff.capacity, facts, months))
    billed = quantity(to_billing_unit(measured, MEASURED_UNIT[tariff.unit], tariff.unit))
    lines.extend(_block_lines(tariff, billed, facts, months))
    if tariff.operations_per_point_month:
        lines.append(
            _line(
                utility,
                "operations",
                "operations charge (metering, network, billing)",
                quantity(facts.metering_points * months),
                "point-month",
                tariff.operations_per_point_month,
            )
        )
    subtotal = sum((line.amount for line in lines), Decimal(0))
    for tax in tariff.taxes:
        lines.append(
            _line(utility, f"tax_{tax.name}", f"{tax.name} {tax.rate:%}", subtotal, "MDL", tax.rate)
        )
    return lines


def block_sizes_multiplier(
    tariff: TariffSpec, facts: AccountFacts, months: Decimal | int
) -> Decimal:
    """What block bounds are multiplied by for this account: basis units times months."""
    per_basis = {
        "account": Decimal(1),
        "resident": Decimal(facts.residents),
        "m2": facts.area_m2,
    }[tariff.block_basis]
    return per_basis * months


def _block_lines(
    tariff: TariffSpec, billed: Decimal, facts: AccountFacts, months: Decimal
) -> list[Line]:
    scale = block_sizes_multiplier(tariff, facts, months)
    lines = []
    for n, block in enumerate(tariff.blocks, start=1):
        low = block.from_qty * scale
        high = None if block.to_qty is None else block.to_qty * scale
        in_block = max(Decimal(0), (billed if high is None else min(billed, high)) - low)
        if in_block > 0:
            span = (
                f"{block.from_qty}-{block.to_qty}"
                if block.to_qty is not None
                else (f"over {block.from_qty}")
            )
            lines.append(
                _line(
                    tariff.utility,
                    f"block_{n}",
                    f"consumption, block {n} ({span} {tariff.unit} per {tariff.block_basis})",
                    in_block,
                    tariff.unit,
                    block.price,
                )
            )
    return lines


def _capacity_line(utility: str, capacity: Capacity, facts: AccountFacts, months: Decimal) -> Line:
    if capacity.basis == "kW":
        if facts.connected_kw is None:
            raise UsageError(f"{utility} capacity is charged per kW: no connected load")
        amount_of = facts.connected_kw
    else:
        amount_of = facts.area_m2
    return _line(
        utility,
        "capacity",
        f"capacity charge per {capacity.basis}",
        quantity(amount_of * months),
        f"{capacity.basis}-month",
        capacity.price,
    )


def _line(
    utility: str, code: str, description: str, qty: Decimal, unit: str, price: Decimal
) -> Line:
    return Line(
        utility=utility,
        code=code,
        description=description,
        quantity=qty,
        unit=unit,
        unit_price=price,
        amount=money(qty * price),
    )
