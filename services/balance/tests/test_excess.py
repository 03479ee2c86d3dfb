"""Group diagnosis by separate changes: each group fault fires alone, concurrent ones
come apart, and noise, weekends, away flats and cold snaps stay silent."""

from __future__ import annotations

import numpy as np
import pytest

from balans_balance.detectors.excess import diagnose_group

START = 600  # faults begin after 25 days of normal history


def _kinds(diagnoses: list) -> list[str]:
    return sorted(d.kind for d in diagnoses if d.member is None)


@pytest.mark.parametrize("seed", [4, 5])
@pytest.mark.parametrize("cold_snap", [False, True])
def test_silent_on_noise_weekends_and_cold_snaps(world, seed: int, cold_snap: bool) -> None:
    """35 days of noisy use with weekends, two flats away (and a cold snap): nothing."""
    assert diagnose_group(world(seed=seed, cold_snap=cold_snap).series()) == []


@pytest.mark.parametrize("seed", [4, 5])
def test_each_group_fault_fires_alone(world, seed: int) -> None:
    """A constant 4 kWh/h, 8 % of the flats' heat, a drift to +10 %: one finding each."""
    w = world(seed=seed)
    hours = np.arange(w.true.shape[1])
    flats = w.true.sum(axis=0)
    leak = np.where((hours >= START) & (hours < START + 120), 4.0, 0.0)
    tap = np.where(hours >= START, 0.08 * flats, 0.0)
    drift = 0.10 * flats * np.clip((hours - START) / 240, 0, 1)
    cases = ((leak, "leak"), (tap, "unauthorised_connection"), (drift, "faulty_balance_meter"))
    for extra, kind in cases:
        found = diagnose_group(w.series(extra))
        assert _kinds(found) == [kind]
        assert abs(found[0].episode.start - START) <= 24


def test_concurrent_leak_and_tapping_in_are_two_findings(world) -> None:
    """A leak from day 25 to 30 during a tapping-in from day 27 on: two findings, the
    leak closed after it ends, the tapping-in still open."""
    w = world(seed=6)
    hours = np.arange(w.true.shape[1])
    leak = np.where((hours >= START) & (hours < START + 120), 4.0, 0.0)
    tap = np.where(hours >= START + 48, 0.10 * w.true.sum(axis=0), 0.0)
    found = {d.kind: d for d in diagnose_group(w.series(leak + tap))}
    assert set(found) == {"leak", "unauthorised_connection"}
    assert not found["leak"].episode.active
    assert abs(found["leak"].episode.end - (START + 119)) <= 12
    assert found["unauthorised_connection"].episode.active
    assert abs(found["unauthorised_connection"].episode.start - (START + 48)) <= 12
