"""The cost and payback estimator reproduces the deck's figures (docs/domain.md)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from balans_billing.cli import register
from balans_pricing.estimator import Building, Heating, Prices, estimate, payback, variant_cost

DECK_TOTALS = {
    "1a": Decimal(214164),
    "1b": Decimal(214284),
    "1c": Decimal(71164),
    "2b": Decimal(75684),
    "2a": Decimal(357306),
}


def test_reference_building_reproduces_the_five_totals() -> None:
    """100 flats, 3 entrances, 10 floors, 34 risers give the deck's five totals exactly."""
    totals = {v.variant: v.total for v in estimate(Building())}
    assert totals == DECK_TOTALS


@pytest.mark.parametrize(
    ("variant", "quantities", "per_flat", "per_radiator"),
    [
        ("1a", [30, 100, 1], 2142, None),
        ("1b", [100, 100, 200, 1], None, None),
        ("1c", [30, 100, 1], 712, None),
        ("2b", [34, 34, 68, 1], None, 223),
        ("2a", [204, 34, 374, 1], None, 1051),
    ],
)
def test_bill_of_materials_matches_the_deck(
    variant: str, quantities: list[int], per_flat: int | None, per_radiator: int | None
) -> None:
    """Each variant's quantities and the deck's per-flat or per-radiator figure."""
    cost = variant_cost(variant, Building(), Prices())
    assert [item.quantity for item in cost.items] == quantities
    assert sum(item.amount for item in cost.items) == cost.total
    if per_flat is not None:
        assert cost.per_flat == per_flat
    if per_radiator is not None:
        assert cost.per_radiator == per_radiator


def test_prices_are_configurable() -> None:
    """A dearer concentrator raises every variant's total by the difference exactly."""
    dearer = estimate(Building(), Prices(concentrator=Decimal(5284)))
    assert {v.variant: v.total - DECK_TOTALS[v.variant] for v in dearer} == dict.fromkeys(
        DECK_TOTALS, Decimal(1000)
    )


def test_landings_with_more_flats_than_inputs_need_more_modules() -> None:
    """Six flats per landing on 4-input modules need two modules per landing."""
    cost = variant_cost("1a", Building(flats=60, entrances=1, floors=10, risers=12), Prices())
    assert cost.items[0].quantity == 20


def test_payback_example_of_the_deck() -> None:
    """1-room flat, 40 % saving, 1122 MDL/Gcal, 5 months: 2244 MDL pays back in one season."""
    one_room = payback(1, Decimal("0.4"))
    assert one_room.allowed_cost_one_season == Decimal(2244)
    assert payback(4, Decimal("0.4")).allowed_cost_one_season == Decimal(5610)
    assert payback(1, Decimal("0.4"), equipment_cost=Decimal(2244)).payback_seasons == 1
    assert payback(1, Decimal("0.2"), equipment_cost=Decimal(2244)).payback_seasons == 2
    empty = payback(1, Decimal("0.4"), equipment_cost=Decimal(2244))
    assert empty.payback_months_if_empty == 2


def test_payback_follows_tariff_and_season() -> None:
    """Halving the tariff doubles the payback; a longer season shortens it."""
    cheap = Heating(tariff_per_gcal=Decimal(561))
    assert payback(1, Decimal("0.4"), cheap, Decimal(2244)).payback_seasons == 2
    long_season = Heating(season_months=Decimal(10))
    assert payback(1, Decimal("0.4"), long_season, Decimal(2244)).payback_seasons == Decimal("0.5")
    with pytest.raises(ValueError, match="saving"):
        payback(1, Decimal("1.5"))


def test_extreme_inputs_are_refused_with_a_reason() -> None:
    """A saving worth nothing, an absurd cost or season are refused clearly, never crash."""
    with pytest.raises(ValueError, match="nothing pays back"):
        payback(1, Decimal("0.0000001"), equipment_cost=Decimal(2244))
    with pytest.raises(ValueError, match="equipment cost"):
        payback(1, Decimal("0.4"), equipment_cost=Decimal(10) ** 40)
    with pytest.raises(ValidationError, match="season_months"):
        Heating(season_months=Decimal(10) ** 30)


def test_cli_estimate_json() -> None:
    """`balans estimate --json` prints the five totals and the payback table."""
    import typer

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "estimate",
            "--flats",
            "100",
            "--entrances",
            "3",
            "--floors",
            "10",
            "--risers",
            "34",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {v["variant"]: Decimal(v["total"]) for v in data["variants"]} == DECK_TOTALS
    one_room = next(p for p in data["payback"] if p["rooms"] == 1)
    assert Decimal(one_room["allowed_cost_one_season"]) == 2244


def test_cli_estimate_table() -> None:
    """The human-readable output names every variant with its total."""
    import typer

    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["estimate"])
    assert result.exit_code == 0, result.output
    for total in ("214 164", "214 284", "71 164", "75 684", "357 306", "2 244"):
        assert total in result.output
