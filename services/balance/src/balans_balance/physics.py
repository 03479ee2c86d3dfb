"""Heat carried by a cubic metre of coolant: the mass balance of volume-metered groups.

Flat flow meters (layouts 1b, 1c) and riser flow meters (2a, 2b) all take their water
from the building's supply, so the coolant mass balance holds: their volumes add up
to the building's. The building meter's heat is V x k x ΔT with the building's own
sensor pair, so the members' heat is Σ V_i x k x ΔT_building. k (EN 1434, meter in
the return pipe) is ρ(T_return) x c_p / 3600; the small error of these approximations
is a near-constant factor that the learned band absorbs.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def water_density_kg_m3(theta_c: FloatArray) -> FloatArray:
    """Density of water at heating temperatures (within 0.05 % of IAPWS from 20 to 95 °C)."""
    return 1000.0 - 0.0189 * np.clip(theta_c - 4.0, 0.0, None) ** 1.687


def heat_per_m3(supply_c: FloatArray, return_c: FloatArray) -> FloatArray:
    """kWh per m³ of coolant metered in the return pipe (NaN where temperatures are missing)."""
    dt = np.clip(supply_c - return_c, 0.0, None)
    k = water_density_kg_m3(return_c) * 4.19 / 3600.0
    return k * dt
