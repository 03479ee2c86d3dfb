"""The partitions' weights a service gives its buildings: what their work cost it."""

from __future__ import annotations

import gc

import pytest

from balans_core.costs import SMOOTHING, BuildingCosts, CpuLedger, freeze_startup_heap


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


class _Clock:
    """A process CPU clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_a_piece_of_work_alone_gets_the_cpu_used_while_it_was_open() -> None:
    clock = _Clock()
    ledger = CpuLedger(clock)
    clock.now += 5.0  # before it opened: nobody's
    token = ledger.open(3)
    clock.now += 0.25
    assert ledger.close(token) == pytest.approx(0.25)


def test_overlapping_pieces_share_the_cpu_by_weight_and_count_it_once() -> None:
    """Two batches at once (one of 3 buildings, one of 1): the CPU while both are open is
    divided 3:1, the rest is the one open's alone, and the two add up to what was used."""
    clock = _Clock()
    ledger = CpuLedger(clock)
    first = ledger.open(3)
    clock.now += 0.1  # the first alone
    second = ledger.open(1)
    clock.now += 0.4  # both: 0.3 and 0.1
    one = ledger.close(first)
    clock.now += 0.2  # the second alone
    two = ledger.close(second)
    assert one == pytest.approx(0.1 + 0.3)
    assert two == pytest.approx(0.1 + 0.2)
    assert one + two == pytest.approx(0.7)


def test_pieces_without_weight_share_evenly() -> None:
    clock = _Clock()
    ledger = CpuLedger(clock)
    a, b = ledger.open(0), ledger.open(0)
    clock.now += 0.5
    assert (ledger.close(a), ledger.close(b)) == (pytest.approx(0.25), pytest.approx(0.25))


def test_the_startup_heap_is_frozen_out_of_the_collector_s_reach() -> None:
    kept = [[] for _ in range(100)]  # alive at the freeze
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= len(kept)
    finally:
        gc.unfreeze()
