"""Properties of heating water (IAPWS-IF97) as lookup tables, and the EN 1434 heat coefficient.

Evaluating IF97 per value in a loop is slow (PERFORMANCE.md), so density and enthalpy are
tabulated once per degree at the network's pressure and interpolated.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from iapws import IAPWS97

PRESSURE_MPA = 0.6
_GRID_C = np.arange(0.0, 151.0)


@cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    density = np.empty_like(_GRID_C)
    enthalpy = np.empty_like(_GRID_C)
    for i, t in enumerate(_GRID_C):
        water = IAPWS97(T=273.15 + float(t), P=PRESSURE_MPA)
        density[i] = water.rho  # kg/m3
        enthalpy[i] = water.h  # kJ/kg
    return density, enthalpy


def heat_coefficient(flow_c: np.ndarray, return_c: np.ndarray) -> np.ndarray:
    """k in kWh/(m3 K) for a volume meter in the return pipe: ρ(T_r)·(h(T_f) - h(T_r))/ΔT."""
    density, enthalpy = _tables()
    dt = np.maximum(flow_c - return_c, 0.01)  # no flow-return difference: the local slope
    h_f = np.interp(return_c + dt, _GRID_C, enthalpy)
    h_r = np.interp(return_c, _GRID_C, enthalpy)
    rho_r = np.interp(return_c, _GRID_C, density)
    return np.asarray(rho_r * (h_f - h_r) / dt / 3600.0)
