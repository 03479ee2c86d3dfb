"""A 2b riser's return sensor judged while other faults of the building move the
references it is judged against: another riser's still register, its own riser's clog,
the mix of returns wandering (``detectors/sensor_faults.py``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from balans_balance.detectors.sensor_faults import SensorSettings, _Building, sensor_faults
from balans_balance.loading import SensorPair

HOURS = 24 * 30
# risers of different sizes (m³/h), half of them small: one of the large ones standing
# still moves the median of the others' raw flows from 0.8 to 0.38
SIZES = (0.3, 0.3, 0.32, 0.35, 0.35, 0.38, 0.5, 0.8, 0.85, 0.9, 0.9, 0.95, 1.0, 1.6)


def _risers(
    seed: int = 5, noise_k: float = 0.2
) -> tuple[list[SensorPair], np.ndarray, dict[int, np.ndarray], np.ndarray, np.ndarray]:
    """A 2b building: every riser's pair on the building's supply (a daily and a
    five-day swing), each riser cooling its water by its own share of one load, its
    return sensor ``noise_k`` noisy; each riser's flow meter on the pair's module, a
    constant flow; and the risers' true returns (the water, without sensor noise)."""
    rng = np.random.default_rng(seed)
    t = np.arange(HOURS)
    supply = 70 + 5 * np.sin(2 * np.pi * t / 24) + 6 * np.sin(2 * np.pi * t / 130)
    load = 1 + 0.3 * np.sin(2 * np.pi * t / 24 + 1) + 0.25 * np.sin(2 * np.pi * t / 130)
    pairs, flows, water = [], {}, []
    for k, size in enumerate(SIZES):
        own = supply - 0.4 + rng.normal(0, 0.01, HOURS)
        ret = own - 15 * rng.uniform(0.85, 1.15) * load
        water.append(ret)
        flows[300 + k] = np.full(HOURS, size)
        pairs.append(
            SensorPair(
                300 + k, "riser", None, None, k + 1, own, ret + rng.normal(0, noise_k, HOURS)
            )
        )
    return pairs, supply, flows, np.vstack(water), rng.normal(0, 0.02, HOURS)


def _mixed(flows: dict[int, np.ndarray], water: np.ndarray) -> np.ndarray:
    """What the building's return sensor reads: the risers' water mixed by their flows."""
    flow = np.vstack(list(flows.values()))
    return (flow * water).sum(axis=0) / flow.sum(axis=0)


def _on(module: int, faults: list) -> set[tuple[str, str]]:
    return {(f.sensor, f.shape) for f in faults if f.pair.module_serial == module}


def test_another_risers_still_register_does_not_hide_a_displaced_return() -> None:
    """Riser 10's meter (0.9 m³/h) stops registering on day 15; from day 18 riser 7's
    return sensor is pulled a third of the way to the room. Against the median of the
    others' raw flows riser 7's flow would more than double (their median falls from
    0.8 to 0.38) and look moved, its return then not judged; each riser against its
    own history, only the still riser's moved."""
    pairs, supply, flows, _, _ = _risers()
    t = np.arange(HOURS)
    flows[309] = np.where(t >= 24 * 15, 0.0, flows[309])
    seventh = pairs[6]
    pulled = t >= 24 * 18
    pairs[6] = replace(
        seventh,
        return_c=np.where(pulled, seventh.return_c - (seventh.return_c - 20) / 3, seventh.return_c),
    )
    found = sensor_faults(pairs, supply, None, flows, None)
    assert _on(306, found) == {("return", "displaced")}
    assert all(f.first >= 24 * 18 - 6 for f in found if f.pair.module_serial == 306)


def test_a_clogged_risers_return_is_not_confirmed_by_the_building_return() -> None:
    """Riser 4's flow falls to 40 % from day 18 (a clog): its water really cools 8 K
    more. The building's return reads the true mix, shifted by what would confirm a
    sensor reading that much too cold (its share of the flow times the deviation,
    say the mix's model wandered with the water so far from its fitted week). While
    the riser's flow moved its return is no sensor's: neither the hourly rule nor the
    day's confirmed by the building's return may blame it."""
    pairs, supply, flows, water, noise = _risers()
    t = np.arange(HOURS)
    clogged = t >= 24 * 18
    flows[303] = np.where(clogged, 0.4 * flows[303], flows[303])
    fourth = pairs[3]
    pairs[3] = replace(fourth, return_c=np.where(clogged, fourth.return_c - 8, fourth.return_c))
    water[3] = np.where(clogged, water[3] - 8, water[3])
    share = flows[303] / np.vstack(list(flows.values())).sum(axis=0)
    building_return = _mixed(flows, water) + noise + np.where(clogged, share * 8, 0.0)
    assert not _on(303, sensor_faults(pairs, supply, None, flows, building_return))


def test_the_building_return_confirms_a_slow_drift_only_beyond_its_wander() -> None:
    """From day 18 a riser's return sensor reads 0.8 K too cold, under the 1 K the
    hourly rule allows, so only the day's median and the building's return can tell
    it. Riser 8 carries 0.084 of the flow: the building's return moves 0.067 K against
    the mix, within what that difference wanders in fault-free weeks (up to 0.1-0.17
    K), though 6 x its noise over the fitted week is less: no evidence, and no fault.
    Riser 14 carries a sixth: it moves 0.13 K, which confirms the drift."""
    pairs, supply, flows, water, noise = _risers(noise_k=0.05)
    t = np.arange(HOURS)
    off = np.where(t >= 24 * 18, 0.8, 0.0)
    building_return = _mixed(flows, water) + noise
    confirmed = {}
    for k in (7, 13):
        drifted = [
            replace(p, return_c=p.return_c - off) if j == k else p for j, p in enumerate(pairs)
        ]
        b = _Building(drifted, supply, SensorSettings(), flows, building_return)
        confirmed[k] = int(b.mixing_confirms(k, b.daily_deviation(k, "return"))[24 * 19 :].sum())
        if k == 7:
            assert not _on(307, sensor_faults(drifted, supply, None, flows, building_return))
    assert confirmed[7] == 0
    assert confirmed[13] >= 24 * 10


def test_a_return_on_a_riser_whose_own_register_stood_still_is_not_judged() -> None:
    """Riser 4 clogs on day 18 (its water cools 8 K more) while its own meter stops
    registering: whether its water moved is not known, so its return, 8 K colder than
    its supply and its neighbours predict, blames no sensor. The other risers' flows
    are unmoved: only its own still register tells that its flow is unknown."""
    pairs, supply, flows, water, noise = _risers()
    t = np.arange(HOURS)
    clogged = t >= 24 * 18
    flows[303] = np.where(clogged, 0.0, flows[303])
    fourth = pairs[3]
    pairs[3] = replace(fourth, return_c=np.where(clogged, fourth.return_c - 8, fourth.return_c))
    water[3] = np.where(clogged, water[3] - 8, water[3])
    assert not _on(303, sensor_faults(pairs, supply, None, flows, _mixed(flows, water) + noise))
