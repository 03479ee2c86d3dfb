"""The partitions' weights balance gives its buildings: what their analyses cost here."""

from __future__ import annotations

import pytest

from balans_balance.costs import SMOOTHING, AnalysisCosts


def test_a_fresh_process_weighs_by_groups() -> None:
    assert AnalysisCosts().weights({1: 3, 2: 7}) == {1: 3.0, 2: 7.0}


def test_measured_buildings_weigh_their_seconds_and_the_rest_by_groups_at_their_rate() -> None:
    costs = AnalysisCosts()
    costs.note(1, 0.2)  # 2 groups: 0.1 s a group
    costs.note(2, 0.4)  # 2 groups, but twice as dear
    costs.note(9, 5.0)  # a building gone since: not weighed, not in the rate
    weights = costs.weights({1: 2, 2: 2, 3: 4})
    assert weights[1] == pytest.approx(0.2)
    assert weights[2] == pytest.approx(0.4)
    assert weights[3] == pytest.approx(4 * (0.6 / 4))
    assert set(weights) == {1, 2, 3}


def test_a_building_s_cost_follows_its_analyses() -> None:
    costs = AnalysisCosts()
    costs.note(1, 1.0)
    costs.note(1, 2.0)
    assert costs.weights({1: 1})[1] == pytest.approx(1.0 + SMOOTHING * 1.0)
