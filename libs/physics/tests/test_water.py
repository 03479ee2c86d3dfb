"""IF97 region 1 and the EN 1434 k-factor against the iapws package."""

from __future__ import annotations

import numpy as np
import pytest
from iapws import IAPWS97

from balans_physics.water import (
    density_kg_m3,
    enthalpy_kj_kg,
    heat_coefficient,
    heat_per_m3,
    k_factor_kwh_m3k,
    property_tables,
)

THETAS = np.arange(5.0, 150.01, 5.0)


def _reference_k(t_flow: float, t_return: float, in_flow: bool, p_mpa: float) -> float:
    flow = IAPWS97(T=t_flow + 273.15, P=p_mpa)
    ret = IAPWS97(T=t_return + 273.15, P=p_mpa)
    rho = flow.rho if in_flow else ret.rho
    return rho * (flow.h - ret.h) / (t_flow - t_return) / 3600.0


@pytest.mark.parametrize("p_mpa", [0.6, 1.6])
def test_density_and_enthalpy_match_iapws(p_mpa: float) -> None:
    """ρ and h agree with iapws to 1e-6 relative from 5 to 150 °C."""
    for theta in THETAS:
        ref = IAPWS97(T=theta + 273.15, P=p_mpa)
        assert density_kg_m3(theta, p_mpa) == pytest.approx(ref.rho, rel=1e-6)
        assert enthalpy_kj_kg(theta, p_mpa) == pytest.approx(ref.h, rel=1e-6)


@pytest.mark.parametrize("in_flow", [True, False])
def test_k_factor_matches_iapws_over_heating_range(in_flow: bool) -> None:
    """k agrees with iapws to 1e-4 relative for every pair 5-150 °C, either pipe."""
    for t_flow in THETAS:
        for t_return in THETAS:
            if t_return >= t_flow:
                continue
            ours = k_factor_kwh_m3k(t_flow, t_return, in_flow, 1.6)
            assert ours == pytest.approx(_reference_k(t_flow, t_return, in_flow, 1.6), rel=1e-4)


def test_k_factor_equal_temperatures_is_rho_cp() -> None:
    """With no temperature difference k is the limit ρ·cp, not a division by zero."""
    ref = IAPWS97(T=60 + 273.15, P=1.6)
    assert k_factor_kwh_m3k(60.0, 60.0, False, 1.6) == pytest.approx(
        ref.rho * ref.cp / 3600.0, rel=1e-4
    )


def test_tables_give_heat_of_one_cubic_metre() -> None:
    """The centi-degree tables reproduce V·k·Δθ for a return meter."""
    rho, h = property_tables(16.0)
    heat = rho[5000] * (h[7000] - h[5000])
    assert heat == pytest.approx(k_factor_kwh_m3k(70.0, 50.0, False, 1.6) * 20.0, rel=1e-9)


def test_array_coefficient_agrees_with_the_scalar_one() -> None:
    """The vectorised k (simulator, balance) is the allocation's k, off-grid temperatures too."""
    flow = np.array([70.0, 55.37, 90.123, 40.0])
    ret = np.array([50.0, 41.2, 60.0, 40.0])
    ours = heat_coefficient(flow, ret)
    for i in range(flow.size):
        assert ours[i] == pytest.approx(k_factor_kwh_m3k(flow[i], ret[i], False, 1.6), rel=2e-5)


def test_heat_per_m3_is_zero_without_delta_t_and_nan_without_data() -> None:
    per_m3 = heat_per_m3(np.array([60.0, 50.0, np.nan]), np.array([40.0, 55.0, 40.0]))
    assert per_m3[0] == pytest.approx(k_factor_kwh_m3k(60.0, 40.0, False, 1.6) * 20.0, rel=2e-5)
    assert per_m3[1] == 0.0
    assert np.isnan(per_m3[2])
