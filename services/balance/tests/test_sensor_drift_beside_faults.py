"""A riser's return drifting under its hourly noise, told by the building's return, while
another riser's supply sensor is frozen (``detectors/sensor_faults.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from balans_balance.detectors.sensor_faults import sensor_faults
from balans_balance.loading import SensorPair

HOURS = 24 * 30


def _risers(
    count: int = 10, seed: int = 3
) -> tuple[list[SensorPair], np.ndarray, dict[int, np.ndarray], np.ndarray]:
    """A 2b building: every riser's pair on the building's supply (a daily and a
    five-day swing), each riser cooling its water by its own share of one load, its
    return sensor 0.2 K noisy; each riser's flow meter on the pair's module; the
    building's return sensor reading the risers' water mixed by their flows."""
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS)
    supply = 70 + 5 * np.sin(2 * np.pi * t / 24) + 6 * np.sin(2 * np.pi * t / 130)
    load = 1 + 0.3 * np.sin(2 * np.pi * t / 24 + 1) + 0.25 * np.sin(2 * np.pi * t / 130)
    pairs, flows, water = [], {}, []
    for k in range(count):
        own = supply - 0.4 + rng.normal(0, 0.01, HOURS)
        ret = own - 15 * rng.uniform(0.85, 1.15) * load
        water.append(ret)
        flows[200 + k] = 2.0 * rng.uniform(0.7, 1.3) * (1 + 0.1 * np.sin(2 * np.pi * t / 24))
        noisy = ret + rng.normal(0, 0.2, HOURS)
        pairs.append(SensorPair(200 + k, "riser", None, None, k + 1, own, noisy))
    flow = np.vstack(list(flows.values()))
    mixed = (flow * np.vstack(water)).sum(axis=0) / flow.sum(axis=0)
    return pairs, supply, flows, mixed + rng.normal(0, 0.02, HOURS)


def test_a_frozen_supply_of_one_riser_does_not_veto_another_risers_drift() -> None:
    """Riser 1's supply sensor freezes on day 18; riser 3's return drifts 1 K warm over
    days 19-23 and stays there, under the 1.2 K its hourly noise allows, so only the
    day's median (and the building's return, which the drift does not move) tells it.
    Riser 1's return is predicted from its own frozen supply, so it leaves its
    prediction too: that is the freeze's doing, found as such, not a sign that the
    predictions' reference moved, and it must not cut riser 3's drift short. Without
    the drift only the freeze is found."""
    pairs, supply, flows, building_return = _risers()
    t = np.arange(HOURS)
    frozen = 24 * 18
    first = pairs[0]
    pairs[0] = replace(
        first, supply_c=np.where(t >= frozen, first.supply_c[frozen], first.supply_c)
    )
    alone = [
        (f.pair.module_serial, f.sensor, f.shape)
        for f in sensor_faults(pairs, supply, None, flows, building_return)
    ]
    assert alone == [(200, "supply", "frozen")]

    third = pairs[2]
    drift = np.clip((t - 24 * 19) / (24 * 4), 0, 1)
    pairs[2] = replace(third, return_c=third.return_c + drift)
    found = [
        f
        for f in sensor_faults(pairs, supply, None, flows, building_return)
        if f.pair.module_serial == 202
    ]
    assert {(f.sensor, f.shape) for f in found} == {("return", "drifting")}
    # one episode from the drift's second half through day 25: the hours riser 1's
    # return was off by its frozen supply are the drift's too
    assert any(f.first < 24 * 23 and f.last >= 24 * 25 for f in found)
