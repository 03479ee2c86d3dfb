"""Rounding rules and unit conversions, in one place so every charge rounds the same way.

- Money: ``Decimal`` rounded to 0.01 MDL, half up, once per invoice line. Totals are the
  exact sum of rounded lines, never rounded again.
- Quantities billed: rounded to 0.001 of the billing unit (Gcal, m3, kWh), half up,
  before prices apply, so the printed quantity times the price gives the printed amount.
- Heat is kWh inside; tariffs price it in Gcal (1 Gcal = 1.163 MWh exactly).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
QUANTITY_STEP = Decimal("0.001")
KWH_PER_GCAL = Decimal("1163")


def money(amount: Decimal) -> Decimal:
    """Round an amount to whole bani (0.01 MDL), half up."""
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def quantity(value: Decimal) -> Decimal:
    """Round a billed quantity to 0.001 of its unit, half up."""
    return value.quantize(QUANTITY_STEP, rounding=ROUND_HALF_UP)


def whole(value: Decimal) -> Decimal:
    """Round to a whole number, half up (the deck's per-flat and per-radiator figures)."""
    return value.quantize(Decimal(1), rounding=ROUND_HALF_UP)


def to_billing_unit(value: Decimal, measured_unit: str, billing_unit: str) -> Decimal:
    """Convert a measured quantity (kWh or m3) to the tariff's unit, unrounded."""
    if measured_unit == billing_unit:
        return value
    if measured_unit == "kWh" and billing_unit == "Gcal":
        return value / KWH_PER_GCAL
    raise ValueError(f"cannot bill {measured_unit} in {billing_unit}")
