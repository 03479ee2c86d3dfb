"""The partitions' weights a service gives its buildings: what their work cost it."""

from __future__ import annotations

import gc

import pytest

from balans_core.costs import SMOOTHING, BuildingCosts, freeze_startup_heap


def test_a_fresh_process_weighs_by_size() -> None:
    assert BuildingCosts().weights({1: 3, 2: 7}) == {1: 3.0, 2: 7.0}


def test_measured_buildings_weigh_their_seconds_and_the_rest_by_size_at_their_rate() -> None:
    costs = BuildingCosts()
    costs.note(1, 0.2)  # size 2: 0.1 s a unit
    costs.note(2, 0.4)  # size 2, but twice as dear
    costs.note(9, 5.0)  # a building gone since: not weighed, not in the rate
    weights = costs.weights({1: 2, 2: 2, 3: 4})
    assert weights[1] == pytest.approx(0.2)
    assert weights[2] == pytest.approx(0.4)
    assert weights[3] == pytest.approx(4 * (0.6 / 4))
    assert set(weights) == {1, 2, 3}


def test_a_building_s_cost_follows_its_measurements() -> None:
    costs = BuildingCosts()
    costs.note(1, 1.0)
    costs.note(1, 2.0)
    assert costs.weights({1: 1})[1] == pytest.approx(1.0 + SMOOTHING * 1.0)


def test_shared_work_is_noted_in_proportion_to_what_each_building_did() -> None:
    costs = BuildingCosts()
    costs.note_shared(0.9, {1: 1.0, 2: 2.0})
    assert costs.seconds == pytest.approx({1: 0.3, 2: 0.6})


def test_shared_work_of_buildings_that_did_nothing_measurable_is_split_evenly() -> None:
    costs = BuildingCosts()
    costs.note_shared(0.4, {1: 0.0, 2: 0.0})
    assert costs.seconds == pytest.approx({1: 0.2, 2: 0.2})


def test_the_startup_heap_is_frozen_out_of_the_collector_s_reach() -> None:
    kept = [[] for _ in range(100)]  # alive at the freeze
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
