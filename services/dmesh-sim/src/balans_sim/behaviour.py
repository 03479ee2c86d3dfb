"""How the people in a flat use heat and water: behaviour profiles, assigned per flat by seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Profile:
    name: str
    share: float  # of flats in a city
    setpoint_c: float
    ua_factor: float = 1.0  # open windows, heated balcony
    network_share: float = 1.0  # electric floor heating covers the rest
    occupied: bool = True
    night_setback_c: float = 0.0


PROFILES = (
    Profile("saver", 0.15, 18.5, night_setback_c=1.5),
    Profile("average", 0.45, 21.0),
    Profile("heavy", 0.12, 23.0, ua_factor=1.15),
    Profile("vacant", 0.05, 14.0, occupied=False),
    Profile("away_two_weeks", 0.06, 21.0),
    Profile("electric_floor", 0.05, 21.0, network_share=0.6),
    Profile("heated_balcony", 0.05, 21.0, ua_factor=1.3),
    Profile("added_sections", 0.04, 22.5),
    Profile("thermostatic_valves", 0.03, 20.0),
)
PROFILE_NAMES = tuple(p.name for p in PROFILES)
AWAY_DAYS = 14
AWAY_SETPOINT_C = 15.0
UTC_OFFSET_H = 2  # Chișinău standard time; behaviour follows local hours


def assign_profiles(seed: int, building_index: int, flats: int) -> np.ndarray:
    """Profile index per flat, reproducible from the seed and the building's index."""
    rng = np.random.default_rng([seed, building_index, 2])
    shares = np.array([p.share for p in PROFILES])
    return rng.choice(len(PROFILES), size=flats, p=shares / shares.sum())


def away_start_day(seed: int, building_index: int, flats: int) -> np.ndarray:
    """Day of the year each flat's two weeks away begin (only used by that profile)."""
    rng = np.random.default_rng([seed, building_index, 3])
    return np.asarray((rng.integers(0, 120, size=flats) + 300) % 365)


def daily_water_shape(local_hour: np.ndarray) -> np.ndarray:
    """Relative use by local hour (mean 1): morning and evening peaks, quiet nights."""
    shape = np.array(
        [
            0.2,
            0.1,
            0.1,
            0.1,
            0.2,
            0.6,
            1.6,
            2.2,
            1.8,
            1.0,
            0.8,
            0.8,
            1.0,
            1.0,
            0.8,
            0.7,
            0.8,
            1.2,
            1.8,
            2.2,
            2.0,
            1.5,
            0.9,
            0.4,
        ]
    )
    return np.asarray(shape[local_hour] / shape.mean())
