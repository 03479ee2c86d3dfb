"""Constructed series for the detector tests: a heated group with realistic noise."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from balans_balance.detectors.leak_tapping_balance_meter import GroupSeries

HOURS = 35 * 24


@dataclass
class World:
    """True hourly use of ``members`` flats, weather, and what the meters register."""

    true: np.ndarray  # [member, hour]
    registered: np.ndarray
    losses: np.ndarray
    night: np.ndarray
    tamper: np.ndarray

    def distort(self, member: int, factor: np.ndarray | float, start: int) -> None:
        """The member's meter registers ``factor`` x its true use from ``start`` on."""
        f = np.ones(self.true.shape[1])
        f[start:] = factor
        self.registered[member] = _register(self.true[member] * f)

    def series(self, extra_balance: np.ndarray | None = None) -> GroupSeries:
        balance = self.true.sum(axis=0) + self.losses
        if extra_balance is not None:
            balance = balance + extra_balance
        return GroupSeries(
            balance=np.round(balance),
            subscribers=self.registered.sum(axis=0),
            night=self.night,
            members=self.registered.copy(),
            tamper=self.tamper,
        )


def _register(true: np.ndarray) -> np.ndarray:
    """Hourly increments of a 1-unit pulse register (quantised like a real one)."""
    counts = np.floor(np.cumsum(true, axis=-1))
    return np.diff(counts, axis=-1, prepend=0)


def build_world(
    seed: int = 1,
    members: int = 40,
    cold_snap: bool = False,
    hours: int = HOURS,
    noise: float = 0.15,
) -> World:
    rng = np.random.default_rng(seed)
    t = np.arange(hours)
    hour_of_day = t % 24
    day = t // 24
    outdoor = -2 + 4 * np.sin(2 * np.pi * day / 20) + 2 * np.sin(2 * np.pi * (hour_of_day - 9) / 24)
    if cold_snap:
        outdoor = outdoor - 12 * ((day >= 26) & (day < 30))
    weekend = (day % 7) >= 5
    diurnal = 1 + 0.15 * np.sin(2 * np.pi * (hour_of_day - 7) / 24) + 0.05 * weekend
    demand = np.maximum(18 - outdoor, 0) * 0.1 * diurnal  # kWh per flat-hour
    size = rng.uniform(0.6, 1.6, members)
    true = size[:, None] * demand[None, :] * rng.lognormal(0, noise, (members, hours))
    away = rng.choice(members, 2, replace=False)
    true[away, 200:536] *= 0.1  # two flats away for two weeks
    registered = _register(true)
    losses = 0.12 * true.sum(axis=0) * rng.normal(1, 0.02, hours)
    night = (hour_of_day >= 22) | (hour_of_day < 5)
    return World(true, registered, losses, night, np.zeros((members, hours), bool))


@pytest.fixture
def world() -> Callable[..., World]:
    return build_world
