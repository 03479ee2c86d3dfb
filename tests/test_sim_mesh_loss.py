"""dmesh-sim: a reading lost in the mesh loses an hour's resolution, never volume."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np

from balans_sim.api import prepare
from balans_sim.city import CityConfig
from balans_sim.instruments import pulse_weights


def test_the_reading_after_a_loss_carries_the_lost_hours_volume() -> None:
    """Across every gap, the next delivered register holds all the volume used meanwhile."""
    config = CityConfig(seed=8, buildings=2, floors=(5, 5))
    sim, _ = prepare(config, datetime(2026, 1, 12, tzinfo=UTC), 168)
    for b in sim.buildings:
        b.base_routes.success[:] = 0.6  # a poor mesh, so that reports get lost
    gaps = 0
    for b, chunk in zip(sim.buildings, sim.advance(168), strict=True):
        weights = pulse_weights(b.plan)
        for j in range(chunk.pulse_count.shape[1]):
            seen = np.nonzero(chunk.pulse_ok[:, j])[0]
            for prev, nxt in itertools.pairwise(seen):
                if nxt - prev < 2:
                    continue
                gaps += 1
                pulses = chunk.pulse_count[nxt, j] - chunk.pulse_count[prev, j]
                used = chunk.true_meter[prev + 1 : nxt + 1, j].sum() / weights[j]
                assert abs(pulses - used) <= 1.0
    assert gaps > 0
