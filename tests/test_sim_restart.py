"""dmesh-sim service start: a registers-only replay, and restarts that continue the series."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from balans_sim.__main__ import start_city
from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.climate import hour_index
from balans_sim.settings import SimSettings

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def test_replay_leaves_the_registers_advance_would() -> None:
    """Replaying hours without readings gives the same registers and the same next readings."""
    config = CityConfig(seed=5, buildings=2, floors=(5, 5))
    full, _ = prepare(config, EPOCH, 24 * 14, faults_per_week=7.0)
    quick, _ = prepare(config, EPOCH, 24 * 14, faults_per_week=7.0)
    full.advance(24 * 4 + 7)
    quick.replay(24 * 4 + 7)
    for a, b in zip(full.advance(5), quick.advance(5), strict=True):
        assert np.array_equal(a.pulse_count, b.pulse_count)
        assert np.array_equal(a.status_ok, b.status_ok)


def test_a_later_restart_continues_the_same_registers() -> None:
    """Two service starts 30 h apart see the same faults, meter exchanges and tenant
    changes, and the same register series."""
    s = SimSettings(
        sim_preset="generated",
        sim_buildings=1,
        sim_epoch=EPOCH,
        sim_backfill_days=1,
        sim_faults_per_week=5.0,
        sim_meter_exchanges_per_year=100.0,
    )
    now = hour_index(EPOCH) + 24 * 10
    first, truth_first, tenants_first = start_city(s, now)
    later, truth_later, tenants_later = start_city(s, now + 30)
    assert truth_first == truth_later
    assert truth_first
    assert tenants_first == tenants_later
    first.advance(later.next_hour - first.next_hour)
    assert first.exchanged() == later.exchanged()
    assert first.exchanged()  # some meters were swapped in the replayed days
    a, b = first.advance(3)[0], later.advance(3)[0]
    assert np.array_equal(a.pulse_count, b.pulse_count)
    assert a.pulse_count.sum() > 0
