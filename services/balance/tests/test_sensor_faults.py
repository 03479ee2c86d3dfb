"""Faulty temperature sensors told against the physics around them
(``detectors/sensor_faults.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from balans_balance.detectors.sensor_faults import SensorFault, sensor_faults
from balans_balance.loading import SensorPair

DAYS = 30
HOURS = 24 * DAYS


def _flats(seed: int = 3, pairs: int = 8) -> tuple[list[SensorPair], np.ndarray]:
    """A 1b building: every flat's pair on the building's supply (a daily and a
    five-day swing), each cooling its water by its own share of the heating curve's
    ΔT, 0.01 K of noise; and the building pair's supply."""
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS)
    supply = 65 + 6 * np.sin(2 * np.pi * t / 24) + 5 * np.sin(2 * np.pi * t / 120)
    dt = 0.25 * (supply - 20)
    out = []
    for k in range(pairs):
        own = supply - 0.3 + rng.normal(0, 0.01, HOURS)
        ret = own - dt * rng.uniform(0.85, 1.15) + rng.normal(0, 0.01, HOURS)
        out.append(SensorPair(100 + k, "flat", str(k + 1), 1 + k // 2, None, own, ret))
    return out, supply


def _found(faults: list[SensorFault], module: int) -> list[tuple[str, str, int, int]]:
    return sorted(
        (f.sensor, f.shape, f.first, f.last) for f in faults if f.pair.module_serial == module
    )


def test_a_return_drifting_before_its_supply_froze_is_a_fault_of_its_own() -> None:
    """Flat 3's return drifts 3 K warm over a day from day 20 and stays there; on day 25
    its supply sensor freezes. From then on the return, predicted from that supply,
    deviates because of the freeze; the five days before it are its own drift, found
    as such and ending where the freeze begins. With no drift before, the freeze alone
    is found."""
    pairs, supply = _flats()
    frozen = 24 * 25
    drift = np.clip((np.arange(HOURS) - 24 * 20) / 24, 0, 1) * 3.0
    p = pairs[2]
    still = np.where(np.arange(HOURS) >= frozen, p.supply_c[frozen], p.supply_c)
    alone = list(pairs)
    alone[2] = replace(p, supply_c=still)
    pairs[2] = replace(p, supply_c=still, return_c=p.return_c + drift)

    found = _found(sensor_faults(pairs, supply), 102)
    shapes = [(sensor, shape) for sensor, shape, _, _ in found]
    assert ("supply", "frozen") in shapes
    assert ("return", "drifting") in shapes
    _, _, first, last = next(f for f in found if f[:2] == ("return", "drifting"))
    assert 24 * 20 <= first < 24 * 21
    assert last == frozen - 1

    assert [(s, shape) for s, shape, _, _ in _found(sensor_faults(alone, supply), 102)] == [
        ("supply", "frozen")
    ]


def test_a_supply_drifting_slowly_is_found_before_it_reaches_the_hourly_limit() -> None:
    """Flat 5's supply sensor drifts 0.3 K a day from day 27 and is 0.9 K off when the
    data ends: never the 1 K the 6-hour rule needs, but the water reaching it is the
    building's own, which nothing moves by itself, and its day's median has been
    0.6 K off for more than 12 hours: a drifting supply. The other flats' sensors,
    and flat 5's with no drift, raise nothing."""
    pairs, supply = _flats()
    start = 24 * 27
    drift = np.clip((np.arange(HOURS) - start) / 24, 0, None) * 0.3
    assert 0.85 < drift[-1] < 1.0
    healthy = sensor_faults(pairs, supply)
    assert healthy == []
    p = pairs[4]
    pairs[4] = replace(p, supply_c=p.supply_c + drift)
    found = sensor_faults(pairs, supply)
    assert [(f.pair.module_serial, f.sensor, f.shape) for f in found] == [
        (104, "supply", "drifting")
    ]
    assert start < found[0].first < HOURS - 12
    assert found[0].last == HOURS - 1
