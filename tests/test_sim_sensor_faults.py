"""dmesh-sim: a faulty temperature sensor misreads the way its ground-truth record says,
on every layout whose bills rest on a sensor pair (1b flats, 2a radiators, 2b risers)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import ROOM_C, OutdoorSeries, hour_index, hour_start
from balans_sim.engine import BuildingSim, Chunk
from balans_sim.faults import FAULT_KINDS, FaultRecord, Where, schedule_faults
from balans_sim.sensor_faults import SENSOR_FAULTS

START = hour_index(datetime(2026, 1, 19, tzinfo=UTC))
HOURS = 72
FAULT_FROM, FAULT_TO = START + 24, START + 60
OUTDOOR = OutdoorSeries(1)
LAYOUTS = ("1b", "2a", "2b")


def _run(layout: str, kind: str, params: dict[str, object]) -> tuple[int, Chunk, Chunk]:
    """(column of the faulty pair, clean chunk, faulty chunk) of the reference building."""
    spec = generate_city(CityConfig(preset="reference", layout_mix={layout: 1}))[0]
    clean = BuildingSim(spec, 1, START)
    col = next(i for i, p in enumerate(clean.plan.pairs) if p.position != "building")
    pair = clean.plan.pairs[col]
    fault = FaultRecord(
        kind=kind,  # type: ignore[arg-type]
        building=spec.code,
        start=hour_start(FAULT_FROM),
        end=hour_start(FAULT_TO),
        where=Where(module_serial=pair.module, flat=pair.flat, riser=pair.riser),
        params=params,
        seed=1,
    )
    faulty = BuildingSim(spec, 1, START, [fault])
    hours = np.arange(START, START + HOURS)
    return col, clean.advance(hours, OUTDOOR), faulty.advance(hours, OUTDOOR)


def _split(chunk: Chunk, col: int) -> tuple[np.ndarray, np.ndarray]:
    return chunk.supply_centi_c[:, col] / 100, chunk.return_centi_c[:, col] / 100


ON = slice(FAULT_FROM - START, FAULT_TO - START)
BEFORE = slice(0, FAULT_FROM - START)
AFTER = slice(FAULT_TO - START, HOURS)


def _untouched_outside(clean: Chunk, faulty: Chunk) -> None:
    for part in (BEFORE, AFTER):
        assert np.array_equal(clean.supply_centi_c[part], faulty.supply_centi_c[part])
        assert np.array_equal(clean.return_centi_c[part], faulty.return_centi_c[part])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_swapped_pair_inverts_delta_t(layout: str) -> None:
    col, clean, faulty = _run(layout, "swapped_sensors", {})
    s0, r0 = _split(clean, col)
    s1, r1 = _split(faulty, col)
    assert (s0[ON] - r0[ON]).mean() > 1.0  # the heating runs: a real ΔT to invert
    # the sensors' biases (each within ±0.06) and noise stay with the sensors
    np.testing.assert_allclose(s1[ON] - r1[ON], -(s0[ON] - r0[ON]), atol=0.35)
    _untouched_outside(clean, faulty)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_displaced_return_reads_nearer_the_room(layout: str) -> None:
    col, clean, faulty = _run(layout, "displaced_sensor", {"sensor": "return", "toward_room": 0.5})
    s0, r0 = _split(clean, col)
    s1, r1 = _split(faulty, col)
    np.testing.assert_allclose(r1[ON], r0[ON] + 0.5 * (ROOM_C - r0[ON]), atol=0.2)
    np.testing.assert_array_equal(s1, s0)
    _untouched_outside(clean, faulty)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_detached_sensor_reads_the_room(layout: str) -> None:
    col, clean, faulty = _run(layout, "detached_sensor", {"sensor": "supply"})
    s1, r1 = _split(faulty, col)
    np.testing.assert_allclose(s1[ON], ROOM_C, atol=0.15)  # its bias and noise only
    np.testing.assert_array_equal(r1, _split(clean, col)[1])
    _untouched_outside(clean, faulty)


def test_drift_adds_a_growing_offset() -> None:
    params = {"sensor": "return", "offset_at_end_k": 3.0, "shape": "ramp"}
    col, clean, faulty = _run("2a", "sensor_drift", params)
    offset = (faulty.return_centi_c[:, col] - clean.return_centi_c[:, col]) / 100
    assert np.all(np.diff(offset[ON]) >= -0.011)  # grows (to the centi-degree)
    assert offset[ON][0] < 0.3
    assert offset[ON][-1] == pytest.approx(3.0, abs=0.02)
    _untouched_outside(clean, faulty)


def test_frozen_sensor_repeats_its_last_reading() -> None:
    col, clean, faulty = _run("1b", "frozen_sensor", {"sensor": "return"})
    last = clean.return_centi_c[FAULT_FROM - START - 1, col]
    assert np.all(faulty.return_centi_c[ON, col] == last)
    assert len(set(clean.return_centi_c[ON, col].tolist())) > 1  # the true one moves
    np.testing.assert_array_equal(faulty.supply_centi_c[:, col], clean.supply_centi_c[:, col])
    _untouched_outside(clean, faulty)


def test_frozen_value_is_the_same_whether_the_fault_began_in_this_chunk_or_before() -> None:
    """A chunk that starts after the sensor froze still repeats the reading of the hour
    before the fault (the engine's chunking must not change the readings)."""
    col, _, whole = _run("1b", "frozen_sensor", {"sensor": "supply"})
    spec = generate_city(CityConfig(preset="reference", layout_mix={"1b": 1}))[0]
    late = BuildingSim(spec, 1, START)
    pair = late.plan.pairs[col]
    late.faults = [
        FaultRecord(
            kind="frozen_sensor",
            building=spec.code,
            start=hour_start(FAULT_FROM),
            end=hour_start(FAULT_TO),
            where=Where(module_serial=pair.module, flat=pair.flat),
            params={"sensor": "supply"},
            seed=1,
        )
    ]
    late.skip(np.arange(START, FAULT_FROM + 5), OUTDOOR)
    chunk = late.advance(np.arange(FAULT_FROM + 5, FAULT_TO), OUTDOOR)
    assert np.all(chunk.supply_centi_c[:, col] == whole.supply_centi_c[ON, col][0])


def test_schedule_draws_sensor_faults_on_billed_pairs_without_moving_other_faults() -> None:
    spec = generate_city(CityConfig(preset="reference", layout_mix={"2a": 1}))[0]
    sim = BuildingSim(spec, 3, START)
    common = {
        "building": spec.code,
        "plan": sim.plan,
        "vertical": True,
        "seed": 3,
        "building_index": 0,
        "start_hour": START,
        "hours": 24 * 28,
        "faults_per_week": 4.0,
    }
    every = schedule_faults(**common)  # type: ignore[arg-type]
    others = schedule_faults(
        **common,  # type: ignore[arg-type]
        kinds=tuple(k for k in FAULT_KINDS if k not in SENSOR_FAULTS),
    )
    sensors = [f for f in every if f.kind in SENSOR_FAULTS]
    assert sensors
    assert {f.kind for f in sensors} <= set(SENSOR_FAULTS)
    billed = {p.module for p in sim.plan.pairs if p.position != "building"}
    assert all(f.where.module_serial in billed and f.where.flat for f in sensors)
    kinds_before = [f for f in every if f.kind not in SENSOR_FAULTS]
    assert kinds_before == others
    # one fault at a time on a pair: a second one on top would be invisible or a blend
    crowded = schedule_faults(**{**common, "faults_per_week": 20.0}, kinds=SENSOR_FAULTS)  # type: ignore[arg-type]
    never = datetime.max.replace(tzinfo=UTC)
    for f in crowded:
        for g in crowded:
            if f is not g and f.where.module_serial == g.where.module_serial:
                assert f.start >= (g.end or never) or g.start >= (f.end or never)
