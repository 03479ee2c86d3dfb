"""Water properties from IAPWS-IF97 region 1 and the EN 1434 heat coefficient, in numba.

Region 1 (compressed liquid) is the Gibbs free energy ``g(p, T)/(RT) = γ(π, τ)`` with
``π = p / 16.53 MPa`` and ``τ = 1386 K / T``; density and specific enthalpy follow from its
derivatives. The coefficients are the 34 of table 2 of the IAPWS-IF97 release.

EN 1434 heat coefficient::

    k(θf, θr) = ρ(θ at the meter) · (h(θf) − h(θr)) / (θf − θr)

so that heat = V · k · (θf − θr) = V · ρ(θ meter) · (h(θf) − h(θr)). The hot loops do not
evaluate the polynomial: :func:`property_tables` tabulates ρ and h once per pressure on a
0.01 °C grid, which is exactly the resolution the radio modules report temperatures in,
so a centi-degree reading is a table index and needs no interpolation.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
import numpy.typing as npt

R_KJ_PER_KG_K = 0.461526
P_STAR_MPA = 16.53
T_STAR_K = 1386.0
KELVIN_OFFSET = 273.15
KJ_PER_KWH = 3600.0
KJ_PER_MJ = 1000.0
DEFAULT_PRESSURE_BAR = 16.0  # PN16, the EN 1434 reference condition
TABLE_MAX_CENTI_C = 20_000  # 200 °C: beyond every heating circuit; region 1 up to 350 °C

_I = np.array(
    [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 8, 8,
     21, 23, 29, 30, 31, 32],
    dtype=np.float64,
)  # fmt: skip
_J = np.array(
    [-2, -1, 0, 1, 2, 3, 4, 5, -9, -7, -1, 0, 1, 3, -3, 0, 1, 3, 17, -4, 0, 6, -5, -2,
     10, -8, -11, -6, -29, -31, -38, -39, -40, -41],
    dtype=np.float64,
)  # fmt: skip
_N = np.array(
    [
        0.14632971213167,
        -0.84548187169114,
        -0.37563603672040e1,
        0.33855169168385e1,
        -0.95791963387872,
        0.15772038513228,
        -0.16616417199501e-1,
        0.81214629983568e-3,
        0.28319080123804e-3,
        -0.60706301565874e-3,
        -0.18990068218419e-1,
        -0.32529748770505e-1,
        -0.21841717175414e-1,
        -0.52838357969930e-4,
        -0.47184321073267e-3,
        -0.30001780793026e-3,
        0.47661393906987e-4,
        -0.44141845330846e-5,
        -0.72694996297594e-15,
        -0.31679644845054e-4,
        -0.28270797985312e-5,
        -0.85205128120103e-9,
        -0.22425281908000e-5,
        -0.65171222895601e-6,
        -0.14341729937924e-12,
        -0.40516996860117e-6,
        -0.12734301741641e-8,
        -0.17424871230634e-9,
        -0.68762131295531e-18,
        0.14478307828521e-19,
        0.26335781662795e-22,
        -0.11947622640071e-22,
        0.18228094581404e-23,
        -0.93537087292458e-25,
    ]
)


@numba.njit(cache=True)
def density_kg_m3(theta_c: float, pressure_mpa: float) -> float:
    """ρ of liquid water at θ (°C) and p (MPa), IF97 region 1."""
    t = theta_c + KELVIN_OFFSET
    pi = pressure_mpa / P_STAR_MPA
    tau = T_STAR_K / t
    gamma_pi = 0.0
    for k in range(_N.size):
        gamma_pi -= _N[k] * _I[k] * (7.1 - pi) ** (_I[k] - 1.0) * (tau - 1.222) ** _J[k]
    specific_volume = pi * gamma_pi * R_KJ_PER_KG_K * t / pressure_mpa / 1000.0
    return 1.0 / specific_volume


@numba.njit(cache=True)
def enthalpy_kj_kg(theta_c: float, pressure_mpa: float) -> float:
    """Specific enthalpy h of liquid water at θ (°C) and p (MPa), IF97 region 1."""
    t = theta_c + KELVIN_OFFSET
    pi = pressure_mpa / P_STAR_MPA
    tau = T_STAR_K / t
    gamma_tau = 0.0
    for k in range(_N.size):
        gamma_tau += _N[k] * (7.1 - pi) ** _I[k] * _J[k] * (tau - 1.222) ** (_J[k] - 1.0)
    return tau * gamma_tau * R_KJ_PER_KG_K * t


@numba.njit(cache=True)
def heat_capacity_kj_kg_k(theta_c: float, pressure_mpa: float) -> float:
    """Isobaric heat capacity cp (the limit of Δh/Δθ when θf = θr)."""
    t = theta_c + KELVIN_OFFSET
    pi = pressure_mpa / P_STAR_MPA
    tau = T_STAR_K / t
    gamma_tautau = 0.0
    for k in range(_N.size):
        gamma_tautau += (
            _N[k] * (7.1 - pi) ** _I[k] * _J[k] * (_J[k] - 1.0) * (tau - 1.222) ** (_J[k] - 2.0)
        )
    return -R_KJ_PER_KG_K * tau * tau * gamma_tautau


@numba.njit(cache=True)
def k_factor_kwh_m3k(
    theta_flow_c: float, theta_return_c: float, meter_in_flow: bool, pressure_mpa: float
) -> float:
    """EN 1434 heat coefficient in kWh/(m3·K) for a volume meter in the flow or return pipe."""
    theta_meter = theta_flow_c if meter_in_flow else theta_return_c
    rho = density_kg_m3(theta_meter, pressure_mpa)
    if abs(theta_flow_c - theta_return_c) < 1e-6:
        return rho * heat_capacity_kj_kg_k(theta_flow_c, pressure_mpa) / KJ_PER_KWH
    dh = enthalpy_kj_kg(theta_flow_c, pressure_mpa) - enthalpy_kj_kg(theta_return_c, pressure_mpa)
    return rho * dh / (theta_flow_c - theta_return_c) / KJ_PER_KWH


@numba.njit(cache=True, parallel=True)
def _tabulate(pressure_mpa: float, rho: np.ndarray, h: np.ndarray) -> None:
    for i in numba.prange(rho.size):
        theta = i / 100.0
        rho[i] = density_kg_m3(theta, pressure_mpa)
        h[i] = enthalpy_kj_kg(theta, pressure_mpa)


@functools.lru_cache(maxsize=8)
def property_tables(
    pressure_bar: float = DEFAULT_PRESSURE_BAR,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ρ (kg/m3) and h/3600 (kWh/kg) per centi-degree from 0 to 200 °C at one pressure.

    With these, the heat of V m3 is ``V · rho[t_meter] · (h[t_flow] − h[t_return])`` in kWh.
    Cached per pressure: callers must not write into the arrays.
    """
    rho = np.empty(TABLE_MAX_CENTI_C + 1)
    h = np.empty(TABLE_MAX_CENTI_C + 1)
    _tabulate(pressure_bar / 10.0, rho, h)
    return rho, h / KJ_PER_KWH


def heat_coefficient(
    flow_c: npt.ArrayLike,
    return_c: npt.ArrayLike,
    *,
    meter_in_flow: bool = False,
    pressure_bar: float = DEFAULT_PRESSURE_BAR,
) -> npt.NDArray[np.float64]:
    """EN 1434 k in kWh/(m3·K) for arrays of temperatures, from :func:`property_tables`.

    The same coefficient as :func:`k_factor_kwh_m3k`, interpolated between the table's
    centi-degrees so that it also serves simulated (non-quantised) temperatures. Where the
    two temperatures (nearly) agree, k is the local slope ρ·cp; NaN temperatures give NaN.
    """
    rho, h = property_tables(pressure_bar)
    grid = np.arange(rho.size) / 100.0
    t_f = np.asarray(flow_c, dtype=np.float64)
    t_r = np.asarray(return_c, dtype=np.float64)
    dt = np.maximum(t_f - t_r, 0.01)
    h_f = np.interp(t_r + dt, grid, h)
    h_r = np.interp(t_r, grid, h)
    rho_meter = np.interp(t_r + dt if meter_in_flow else t_r, grid, rho)
    return np.asarray(rho_meter * (h_f - h_r) / dt)


def heat_per_m3(
    flow_c: npt.ArrayLike, return_c: npt.ArrayLike, *, pressure_bar: float = DEFAULT_PRESSURE_BAR
) -> npt.NDArray[np.float64]:
    """kWh carried by one m3 metered in the return pipe: k·ΔT (0 without a positive ΔT)."""
    t_f = np.asarray(flow_c, dtype=np.float64)
    t_r = np.asarray(return_c, dtype=np.float64)
    dt = np.clip(t_f - t_r, 0.0, None)
    return heat_coefficient(t_f, t_r, pressure_bar=pressure_bar) * dt
