"""Outdoor temperature for a heating season, and the heating curve of the substation.

The built-in climate is Chișinău's (monthly means), with a daily cycle and weather fronts
that are deterministic functions of the hour and the seed: any stretch of hours can be
computed on its own and comes out the same (no state carried from hour to hour).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

# Chișinău monthly mean air temperature, °C (January first)
CHISINAU_MONTHLY_C = np.array(
    [-2.4, -0.9, 3.9, 10.6, 16.5, 20.1, 22.0, 21.5, 16.6, 10.4, 4.7, -0.2]
)
DESIGN_OUTDOOR_C = -16.0
DESIGN_SUPPLY_C = 95.0
MIN_SUPPLY_C = 45.0
ROOM_C = 20.0
HEATING_OFF_ABOVE_C = 10.0
_FRONT_PERIODS_H = np.array([41.0, 83.0, 157.0, 293.0])
_FRONT_AMPLITUDES_C = np.array([1.2, 2.0, 2.6, 2.2])
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def hour_index(ts: datetime) -> int:
    """Whole hours since 2000-01-01 UTC: the simulator's clock."""
    return int((ts - EPOCH).total_seconds() // 3600)


def hour_start(index: int) -> datetime:
    return datetime.fromtimestamp(EPOCH.timestamp() + index * 3600, tz=UTC)


def built_in_outdoor_c(hours: np.ndarray, seed: int) -> np.ndarray:
    """Outdoor °C for absolute hour indices: climate + daily cycle (peak 13:00 UTC) + fronts."""
    h = hours.astype(np.float64)
    day_of_year = (h / 24.0) % 365.2425
    month_pos = day_of_year / 30.44 - 0.5
    lo = np.floor(month_pos).astype(int) % 12
    frac = month_pos - np.floor(month_pos)
    climate = CHISINAU_MONTHLY_C[lo] * (1 - frac) + CHISINAU_MONTHLY_C[(lo + 1) % 12] * frac
    daily = 3.0 * np.cos(2 * np.pi * ((h % 24) - 13.0) / 24.0)
    phases = np.random.default_rng([seed, 7]).uniform(0, 2 * np.pi, _FRONT_PERIODS_H.size)
    fronts = (
        _FRONT_AMPLITUDES_C[:, None]
        * np.sin(2 * np.pi * h[None, :] / _FRONT_PERIODS_H[:, None] + phases[:, None])
    ).sum(axis=0)
    return np.asarray(climate + daily + fronts)


class OutdoorSeries:
    """Outdoor temperature by absolute hour: the built-in climate, or a CSV (ts,outdoor_c)
    whose hours override it."""

    def __init__(self, seed: int, csv_path: Path | None = None) -> None:
        self.seed = seed
        self.overrides: dict[int, float] = {}
        if csv_path is not None:
            with csv_path.open(newline="") as f:
                for row in csv.DictReader(f):
                    ts = datetime.fromisoformat(row["ts"].replace("Z", "+00:00"))
                    self.overrides[hour_index(ts)] = float(row["outdoor_c"])

    def __call__(self, hours: np.ndarray) -> np.ndarray:
        out = built_in_outdoor_c(hours, self.seed)
        if self.overrides:
            for i, h in enumerate(hours.tolist()):
                if h in self.overrides:
                    out[i] = self.overrides[h]
        return out


def supply_c(outdoor_c: np.ndarray) -> np.ndarray:
    """Heating curve: 95 °C at the design outdoor temperature, never below 45 °C."""
    share = np.clip((ROOM_C - outdoor_c) / (ROOM_C - DESIGN_OUTDOOR_C), 0.0, 1.2)
    return np.asarray(np.maximum(ROOM_C + (DESIGN_SUPPLY_C - ROOM_C) * share**0.8, MIN_SUPPLY_C))


def heating_on(outdoor_c: np.ndarray) -> np.ndarray:
    """The network heats while it is colder than 10 °C outside (hour by hour)."""
    return np.asarray(outdoor_c < HEATING_OFF_ABOVE_C)
