"""The building methodology on hand-computed cases; Σ flats = building under every option."""

from __future__ import annotations

import numpy as np
import pytest

from balans_allocation.flags import Flag
from balans_allocation.methodology import Methodology, allocate

AREA = np.array([50.0, 30.0, 20.0])


def _one_hour(building: float, measured: list[float], **options: object) -> np.ndarray:
    result = allocate(
        np.array([building]),
        np.array([measured]),
        np.zeros((1, 3), dtype=np.uint16),
        AREA,
        Methodology.model_validate(options),
    )
    assert result.total.sum() == pytest.approx(building)
    return result


def test_common_part_by_area() -> None:
    """120 kWh over 40/30/30 measured: the 20 kWh common part goes 10/6/4 by area."""
    result = _one_hour(120.0, [40.0, 30.0, 30.0], split="area")
    np.testing.assert_allclose(result.total[0], [50.0, 36.0, 34.0])
    np.testing.assert_allclose(result.common[0], [10.0, 6.0, 4.0])


def test_common_part_by_consumption() -> None:
    """By consumption every flat is scaled by 120/100."""
    result = _one_hour(120.0, [40.0, 30.0, 30.0], split="consumption")
    np.testing.assert_allclose(result.total[0], [48.0, 36.0, 36.0])


def test_fixed_split_german_rule() -> None:
    """70% of the building by consumption, 30% by area."""
    result = _one_hour(120.0, [40.0, 30.0, 30.0], split="fixed", consumption_share=0.7)
    np.testing.assert_allclose(result.total[0], [51.6, 36.0, 32.4])


def test_minimum_charge_taken_from_the_others_by_headroom() -> None:
    """A zero flat is raised to 60% of its area share; the others pay it by headroom."""
    result = _one_hour(120.0, [40.0, 30.0, 0.0], split="area", min_charge_fraction=0.6)
    np.testing.assert_allclose(
        result.total[0], [65 - 29 * 4.4 / 52.4, 45 - 23.4 * 4.4 / 52.4, 14.4]
    )
    assert result.flags[0, 2] & Flag.MIN_CHARGE
    assert result.adjustment[0, 2] == pytest.approx(4.4)


def test_missing_flat_estimated_from_comparable_flats_and_review() -> None:
    """No data: measured flats' kWh/m2 × area; 30% of area estimated exceeds the 25% limit."""
    result = _one_hour(120.0, [40.0, np.nan, 30.0])
    assert result.measured[0, 1] == pytest.approx(30.0)
    assert result.flags[0, 1] & Flag.ESTIMATED
    assert result.building_flags[0] & Flag.REVIEW
    assert result.estimated_area_fraction[0] == pytest.approx(0.3)


def test_building_below_flats_scales_down_never_negative() -> None:
    """A building meter reading below the flats scales every flat down; no negative total."""
    result = _one_hour(80.0, [40.0, 30.0, 30.0], split="area")
    np.testing.assert_allclose(result.total[0], [32.0, 24.0, 24.0])
    assert result.building_flags[0] & Flag.BUILDING_BELOW_FLATS


def test_plausibility_cap() -> None:
    """A flat above 2× the building's kWh/m2 is capped there; the excess becomes common."""
    result = _one_hour(120.0, [20.0, 10.0, 60.0], cap_factor=2.0)
    assert result.measured[0, 2] == pytest.approx(48.0)
    np.testing.assert_allclose(result.total[0], [41.0, 22.6, 56.4])
    assert result.flags[0, 2] & Flag.CAP_HIT


@pytest.mark.parametrize("split", ["area", "consumption", "fixed"])
def test_sum_equals_building_on_random_hours(split: str) -> None:
    """On random data with gaps, zeros and faults, Σ totals equals the building meter."""
    rng = np.random.default_rng(5)
    hours, flats = 200, 60
    area = rng.uniform(30, 90, flats)
    measured = rng.uniform(0, 3, (hours, flats))
    measured[rng.random(measured.shape) < 0.1] = 0.0
    measured[rng.random(measured.shape) < 0.05] = np.nan
    building = np.nansum(measured, axis=1) * rng.uniform(0.8, 1.4, hours)
    rule = Methodology(split=split, min_charge_fraction=0.3, cap_factor=3.0)
    result = allocate(building, measured, np.zeros((hours, flats), np.uint16), area, rule)
    np.testing.assert_allclose(result.total.sum(axis=1), building, rtol=1e-9)
    assert result.total.min() >= 0.0
