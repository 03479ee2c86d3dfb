"""The methodology's vacant-flat rule: who pays for the days a flat has no account.

``buildings.methodology.vacant_flat`` (docs/billing.md, "Tenant changes and vacant flats"):

- ``owner`` (default): the building's owner account pays for each vacant span as a holder
  would: the flat's metered use in those hours and the fixed, capacity and operations
  charges prorated by the vacant days.
- ``owner_consumption``: the owner account pays only the metered use (and its taxes); the
  monthly charges of vacant days are not billed.
- ``none``: vacant days are not billed; their heat stays in the building's balance.

A vacant flat is priced as an account with one resident (block bounds per resident).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from balans_billing.charges import Line
from balans_billing.tariffs import TariffSpec

VacantRule = Literal["owner", "owner_consumption", "none"]

VACANT_RESIDENTS = 1


class BillingRules(BaseModel):
    """The part of a building's methodology billing reads (the rest is allocation's)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    vacant_flat: VacantRule = "owner"


def rules_of(methodology: dict[str, Any] | None) -> BillingRules:
    """The billing rules of a building's methodology (a bad value raises ValueError)."""
    return BillingRules.model_validate(methodology or {})


def vacant_tariff(tariff: TariffSpec, rule: VacantRule) -> TariffSpec:
    """The tariff a vacant span is priced with: all of it, or only its consumption."""
    if rule == "owner_consumption":
        return tariff.model_copy(
            update={
                "fixed_per_month": Decimal(0),
                "capacity": None,
                "operations_per_point_month": Decimal(0),
            }
        )
    return tariff


def merge_lines(lines: list[Line], note: str) -> list[Line]:
    """One line per (utility, code): the vacant spans of several flats on one owner invoice
    (quantities and amounts summed, so the total is still the sum of the priced spans)."""
    merged: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in lines:
        merged[(line.utility, line.code)].append(line)
    return [
        Line(
            utility=first.utility,
            code=first.code,
            description=f"{note}: {first.description}",
            quantity=sum((x.quantity for x in same), Decimal(0)),
            unit=first.unit,
            unit_price=first.unit_price,
            amount=sum((x.amount for x in same), Decimal(0)),
        )
        for (first, same) in ((group[0], group) for group in merged.values())
    ]
