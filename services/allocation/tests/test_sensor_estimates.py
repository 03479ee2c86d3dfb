"""A faulty sensor's temperatures estimated from the riser cascade or the pair's history,
only over the alert's hours (balans_allocation.sensor_estimates)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from balans_allocation.building import Building, SensorPair
from balans_allocation.methodology import Methodology
from balans_allocation.sensor_estimates import (
    SensorEstimate,
    apply,
    fit,
    flats_on,
    method_of,
    neighbours,
)

START = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 240
FAULT = 200  # first faulty hour
RNG = np.random.default_rng(3)


def _building(layout: str) -> Building:
    """Three flats on floors 3, 2, 1 with one pair each on riser 7 (2a: one riser, water
    top-down; 1b: a flat's own loop)."""
    pairs = tuple(
        SensorPair(100 + i, "flat", 10 + i, 7 if layout == "2a" else None, None) for i in range(3)
    )
    return Building(
        id=1, layout=layout, methodology=Methodology(), flat_ids=np.array([10, 11, 12]),
        area_m2=np.array([50.0, 60.0, 70.0]), meters=(), pairs=pairs, radiators=(),
    )  # fmt: skip


FLOORS = {10: 3, 11: 2, 12: 1}


def _cascade_water() -> tuple[np.ndarray, np.ndarray]:
    """°C [hour, pair] of three radiators in a row: each outlet 0.3 K warmer than the next
    inlet (the pipe between them), each radiator cooling the water 2-3 K."""
    supply = 70 + 5 * np.sin(np.arange(HOURS) / 12)
    flow = np.empty((HOURS, 3))
    ret = np.empty((HOURS, 3))
    for i, drop in enumerate((2.0, 3.0, 2.5)):
        flow[:, i] = supply
        ret[:, i] = supply - drop * (1 + 0.1 * np.cos(np.arange(HOURS) / 7))
        supply = ret[:, i] - 0.3
    return flow, ret


def _centi(c: np.ndarray) -> np.ndarray:
    return np.round(c * 100).astype(np.int16)


def test_the_cascade_reads_a_return_from_the_next_radiators_supply() -> None:
    building = _building("2a")
    nb = neighbours(building, FLOORS, 101)
    assert (nb.above, nb.below, set(nb.peers)) == (100, 102, {100, 102})
    flow, ret = _cascade_water()
    serials = [100, 101, 102]
    coefficients = fit(101, nb, serials, _centi(flow[:FAULT]), _centi(ret[:FAULT]))
    assert coefficients["below_offset_k"] == pytest.approx(0.3, abs=0.01)
    assert method_of("return", nb, coefficients) == "cascade"
    read = ret.copy()
    read[FAULT:, 1] += 0.5 * (20 - read[FAULT:, 1])  # displaced towards the room
    estimate = SensorEstimate(1, 101, "return", "cascade", START + FAULT * timedelta(hours=1),
                              None, (11,), coefficients)  # fmt: skip
    t_flow, t_return, (on,) = apply([estimate], serials, _centi(flow), _centi(read), START)
    assert on.sum() == HOURS - FAULT
    np.testing.assert_allclose(t_return[FAULT:, 1] / 100, ret[FAULT:, 1], atol=0.02)
    assert (t_return[:FAULT] == _centi(read[:FAULT])).all()  # before the fault: as read
    assert (t_flow == _centi(flow)).all()  # the supply sensor was fine
    assert (t_return[:, [0, 2]] == _centi(read[:, [0, 2]])).all()  # the neighbours untouched


def test_history_keeps_the_pairs_ratio_to_its_peers_and_ends_at_the_last_hour() -> None:
    """1b: no cascade; the pair's ΔT is its peers' times the ratio it kept before the
    fault; after the alert's last hour the readings count again."""
    building = _building("1b")
    nb = neighbours(building, FLOORS, 100)
    assert (nb.above, nb.below) == (None, None)
    supply = 70 + 5 * np.sin(np.arange(HOURS) / 12)[:, None] + RNG.normal(0, 0.05, (HOURS, 3))
    peer_dt = 20 + 3 * np.cos(np.arange(HOURS) / 9)
    dt = peer_dt[:, None] * np.array([1.2, 1.0, 1.0])
    ret = supply - dt
    serials = [100, 101, 102]
    coefficients = fit(100, nb, serials, _centi(supply[:FAULT]), _centi(ret[:FAULT]))
    assert coefficients["dt_ratio"] == pytest.approx(1.2, abs=0.01)
    assert method_of("return", nb, coefficients) == "history"
    read = ret.copy()
    read[FAULT:, 0] -= 8.0  # reads 8 K low: the flat's ΔT 40 % too high
    hour = timedelta(hours=1)
    estimate = SensorEstimate(1, 100, "return", "history", START + FAULT * hour,
                              START + (FAULT + 19) * hour, (10,), coefficients)  # fmt: skip
    _, t_return, (on,) = apply([estimate], serials, _centi(supply), _centi(read), START)
    assert np.flatnonzero(on).tolist() == list(range(FAULT, FAULT + 20))
    np.testing.assert_allclose(t_return[FAULT : FAULT + 20, 0] / 100, ret[FAULT : FAULT + 20, 0],
                               atol=0.3)  # fmt: skip
    assert (t_return[FAULT + 20 :, 0] == _centi(read[FAULT + 20 :, 0])).all()


def test_a_riser_pairs_heat_rests_on_the_flats_of_its_riser() -> None:
    building = Building(
        id=1, layout="2b", methodology=Methodology(), flat_ids=np.array([10, 11, 12]),
        area_m2=np.ones(3), meters=(), pairs=(SensorPair(5, "riser", None, 7, None),),
        radiators=((10, 7, 8), (11, 8, 8), (12, 7, 6)),
    )  # fmt: skip
    assert flats_on(building, building.pairs[0]) == (10, 12)
