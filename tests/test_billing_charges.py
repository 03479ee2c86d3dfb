"""Tariff validation and every charge type, worked by hand (pure, no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from balans_billing.charges import AccountFacts, Line, UsageError, price_usage
from balans_billing.fairness import FlatHeat, fairness_report
from balans_billing.invoicing import correction_lines
from balans_billing.periods import PeriodError, month_bounds, whole_months
from balans_billing.tariffs import TariffSpec

D = Decimal
FACTS = AccountFacts(residents=3, area_m2=D("50.00"), metering_points=2, connected_kw=D("4.5"))


def tariff(**overrides: object) -> TariffSpec:
    """A cold-water tariff with three blocks per account: 0-10 at 10, 10-20 at 20, 20+ at 30."""
    doc: dict[str, object] = {
        "utility": "cold_water",
        "unit": "m3",
        "effective_from": date(2026, 1, 1),
        "blocks": [
            {"from_qty": 0, "to_qty": 10, "price": "10"},
            {"from_qty": 10, "to_qty": 20, "price": "20"},
            {"from_qty": 20, "price": "30"},
        ],
    }
    doc.update(overrides)
    return TariffSpec.model_validate(doc)


def amounts(lines: list[Line]) -> dict[str, Decimal]:
    return {line.code: line.amount for line in lines}


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ([{"from_qty": 0, "to_qty": 10, "price": 1}, {"from_qty": 8, "price": 2}], "overlap"),
        ([{"from_qty": 0, "to_qty": 10, "price": 1}, {"from_qty": 12, "price": 2}], "gap"),
        ([{"from_qty": 1, "price": 1}], "start at 0"),
        ([{"from_qty": 0, "to_qty": 10, "price": 1}], "last block must be unbounded"),
        ([{"from_qty": 0, "price": 1}, {"from_qty": 5, "price": 2}], "unbounded but block 2"),
        ([{"from_qty": 0, "price": -1}], "greater than or equal to 0"),
        ([], "at least 1"),
    ],
)
def test_invalid_blocks_are_refused(blocks: list[dict[str, object]], message: str) -> None:
    """Overlapping, gapped, unanchored, bounded-last or negative blocks fail validation."""
    with pytest.raises(ValidationError, match=message):
        tariff(blocks=blocks)


def test_negative_charges_wrong_units_and_dates_are_refused() -> None:
    """Negative fixed/operations prices, a unit foreign to the utility, reversed dates."""
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        tariff(fixed_per_month="-1")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        tariff(operations_per_point_month="-0.01")
    with pytest.raises(ValidationError, match="billed in m3, not Gcal"):
        tariff(unit="Gcal")
    with pytest.raises(ValidationError, match="effective_to must be after"):
        tariff(effective_to=date(2025, 12, 1))


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        (D("9.999"), {"block_1": D("99.99")}),
        (D("10"), {"block_1": D("100.00")}),
        (D("10.001"), {"block_1": D("100.00"), "block_2": D("0.02")}),
        (D("19.999"), {"block_1": D("100.00"), "block_2": D("199.98")}),
        (D("20"), {"block_1": D("100.00"), "block_2": D("200.00")}),
        (D("20.001"), {"block_1": D("100.00"), "block_2": D("200.00"), "block_3": D("0.03")}),
    ],
)
def test_block_boundaries(used: Decimal, expected: dict[str, Decimal]) -> None:
    """Just below, at and just above each bound, consumption lands in the right block."""
    assert amounts(price_usage(tariff(), used, FACTS, months=1)) == expected


def test_blocks_per_resident_and_per_m2_scale_with_the_account() -> None:
    """Per resident: 3 residents x 2 m3 = 6 m3 cheap; per m2: 50 m2 x 0.1 = 5 m3 cheap."""
    per_resident = tariff(
        block_basis="resident",
        blocks=[{"from_qty": 0, "to_qty": 2, "price": 10}, {"from_qty": 2, "price": 30}],
    )
    lines = price_usage(per_resident, D(8), FACTS, months=1)
    assert [(x.quantity, x.amount) for x in lines] == [(D(6), D(60)), (D(2), D(60))]
    per_m2 = tariff(
        block_basis="m2",
        blocks=[{"from_qty": 0, "to_qty": "0.1", "price": 10}, {"from_qty": "0.1", "price": 30}],
    )
    lines = price_usage(per_m2, D(8), FACTS, months=2)
    assert [(x.quantity, x.amount) for x in lines] == [(D(8), D(80))]  # 2 months: 10 m3 cheap


def test_fixed_capacity_operations_and_tax() -> None:
    """Fixed 25/month, 12.5/kW capacity, 7.5 per point, 8 % VAT on the sum, for 1 month."""
    spec = tariff(
        fixed_per_month="25",
        capacity={"basis": "kW", "price": "12.5"},
        operations_per_point_month="7.5",
        taxes=[{"name": "vat", "rate": "0.08"}],
    )
    lines = price_usage(spec, D(5), FACTS, months=1)
    assert amounts(lines) == {
        "fixed": D("25.00"),
        "capacity": D("56.25"),  # 4.5 kW x 12.5
        "block_1": D("50.00"),
        "operations": D("15.00"),  # 2 points x 7.5
        "tax_vat": D("11.70"),  # 8 % of 146.25 = 11.70
    }
    per_m2 = tariff(capacity={"basis": "m2", "price": "0.4"})
    assert amounts(price_usage(per_m2, D(0), FACTS, months=3))["capacity"] == D("60.00")


def test_capacity_per_kw_needs_a_connected_load() -> None:
    """A kW capacity charge without the account's connected load is an error, not zero."""
    spec = tariff(capacity={"basis": "kW", "price": "1"})
    with pytest.raises(UsageError, match="connected load"):
        price_usage(spec, D(1), FACTS.model_copy(update={"connected_kw": None}), months=1)


def test_zero_consumption_pays_fixed_plus_operations_exactly() -> None:
    """An account that used nothing pays the fixed and operations charges and nothing else."""
    spec = tariff(fixed_per_month="30", operations_per_point_month="12")
    lines = price_usage(spec, D(0), FACTS, months=1)
    assert sum(x.amount for x in lines) == D(30) + 2 * D(12)
    assert {x.code for x in lines} == {"fixed", "operations"}


def test_heat_in_gcal_and_rounding() -> None:
    """1163 kWh is 1 Gcal at 1122 MDL; quantities round half up to 0.001, money to 0.01."""
    heat = TariffSpec(
        utility="heat",
        unit="Gcal",
        effective_from=date(2026, 1, 1),
        blocks=({"from_qty": 0, "price": "1122"},),
    )
    assert amounts(price_usage(heat, D(1163), FACTS, 1)) == {"block_1": D("1122.00")}
    # 0.5815 kWh = 0.0005 Gcal -> rounds up to 0.001 Gcal -> 1.122 MDL -> 1.12
    line = price_usage(heat, D("0.5815"), FACTS, 1)[0]
    assert (line.quantity, line.amount) == (D("0.001"), D("1.12"))
    half_ban = tariff(blocks=[{"from_qty": 0, "price": "0.005"}])
    assert price_usage(half_ban, D(1), FACTS, 1)[0].amount == D("0.01")


def test_corrections_take_issued_to_fresh_exactly() -> None:
    """Issued lines plus correction lines equal the fresh lines, per code and in total."""
    spec = tariff(fixed_per_month="10")
    issued = price_usage(spec, D("15"), FACTS, 1)
    fresh = price_usage(spec, D("21.5"), FACTS, 1)
    corr = correction_lines(issued, fresh)
    assert {x.code: x.amount for x in corr} == {"block_2": D("100.00"), "block_3": D("45.00")}
    assert sum(x.amount for x in issued + corr) == sum(x.amount for x in fresh)
    back = correction_lines(issued + corr, issued)
    assert {x.code: x.amount for x in back} == {"block_2": D("-100.00"), "block_3": D("-45.00")}
    assert correction_lines(issued, issued) == []


def test_periods_are_whole_local_months() -> None:
    """A local calendar month counts 1; a period off the month boundary is refused."""
    start, end = month_bounds(2026, 1, "Europe/Chisinau")
    assert whole_months(start, end, "Europe/Chisinau") == 1
    assert start.utcoffset() is not None
    _, march = month_bounds(2026, 3, "Europe/Chisinau")
    assert whole_months(start, march, "Europe/Chisinau") == 3
    with pytest.raises(PeriodError, match="not the start of a month"):
        whole_months(start, end, "UTC")


def test_fairness_thirds_follow_the_deck_pattern() -> None:
    """Equal flats: low users pay about half, average the same, high about +50 %."""
    flats = [
        FlatHeat(flat_id=i, number=str(i), area_m2=D(50), heat_kwh=D(kwh))
        for i, kwh in enumerate([500, 520, 480, 1000, 990, 1010, 1500, 1490, 1510], start=1)
    ]
    report = fairness_report(flats, D(1122))
    assert report.mean_ratio_by_third == {
        "low": D("0.500"),
        "average": D("1.000"),
        "high": D("1.500"),
    }
    assert (report.winners, report.unchanged, report.losers) == (3, 3, 3)
    by_area = sum(f.area_based_mdl for f in report.flats)
    metered = sum(f.metered_mdl for f in report.flats)
    assert abs(by_area - metered) <= D("0.01") * len(flats)  # same heat, per-flat rounding
    assert sum(report.ratio_histogram.values()) == 9
