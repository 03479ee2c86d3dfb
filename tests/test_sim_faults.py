"""dmesh-sim: each fault kind changes the readings the way its ground-truth record says."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import OutdoorSeries, hour_index, hour_start
from balans_sim.engine import BuildingSim, Chunk
from balans_sim.faults import FAULT_KINDS, FaultRecord, Where, read_ground_truth, write_ground_truth
from balans_sim.instruments import pulse_weights
from balans_sim.mesh import CUTOFF_MV

START = hour_index(datetime(2026, 1, 19, tzinfo=UTC))
HOURS = 96
FAULT_FROM, FAULT_TO = START + 24, START + 72
OUTDOOR = OutdoorSeries(1)


def _pair(layout: str, fault: FaultRecord | None) -> tuple[BuildingSim, Chunk, Chunk]:
    spec = generate_city(CityConfig(preset="reference", layout_mix={layout: 1}))[0]
    hours = np.arange(START, START + HOURS)
    clean = BuildingSim(spec, 1, START)
    faulty = BuildingSim(spec, 1, START, [fault] if fault else [])
    return faulty, clean.advance(hours, OUTDOOR), faulty.advance(hours, OUTDOOR)


def _record(kind: str, where: Where, params: dict[str, object], end: bool = True) -> FaultRecord:
    return FaultRecord.model_validate(
        {
            "kind": kind,
            "building": "ref-1a",
            "start": hour_start(FAULT_FROM),
            "end": hour_start(FAULT_TO) if end else None,
            "where": where,
            "params": params,
            "seed": 1,
        }
    )


def _used(sim: BuildingSim, chunk: Chunk, serial: str, lo: int, hi: int) -> float:
    """Registered quantity of a meter between the readings of hours lo and hi (absolute)."""
    col = next(i for i, m in enumerate(sim.plan.meters) if m.serial == serial)
    a, b = lo - START, hi - START
    return float(
        (chunk.pulse_count[b, col] - chunk.pulse_count[a, col]) * pulse_weights(sim.plan)[col]
    )


def _meter(layout: str, role: str) -> Where:
    spec = generate_city(CityConfig(preset="reference", layout_mix={layout: 1}))[0]
    sim = BuildingSim(spec, 1, START)
    m = next(m for m in sim.plan.meters if m.role == role and m.utility == "heat")
    return Where(
        meter_serial=m.serial, module_serial=m.module, input=m.input, flat=m.flat, riser=m.riser
    )


def test_every_kind_is_scheduled_and_round_trips_through_the_file(tmp_path: Path) -> None:
    """The scheduler draws every kind over a long run; records survive the JSON-lines file."""
    from balans_sim.engine import CitySim

    sim = CitySim(
        generate_city(CityConfig(seed=2, buildings=5, layout_mix={"2a": 1, "1a": 1})), 2, START
    )
    records = sim.schedule_faults(24 * 7 * 8, faults_per_week=3.0)
    assert {r.kind for r in records} == set(FAULT_KINDS)
    path = tmp_path / "truth.jsonl"
    write_ground_truth(path, records)
    assert read_ground_truth(path) == records
    assert '"start":"' in path.read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("magnet", {"factor": 0.4, "tamper_flag_raised": True}),
        ("stuck_meter", {}),
        ("meter_drift", {"error_at_end": -0.15}),
        ("meter_drift", {"error_at_end": -0.15, "shape": "settle", "settle_hours": 24}),
        ("meter_drift", {"error_at_end": -0.15, "shape": "step"}),
    ],
)
def test_flat_meter_faults(kind: str, params: dict[str, object]) -> None:
    """Magnet, stuck and drifting meters register factor x the truth during the fault only."""
    where = _meter("1a", "flat")
    sim, clean, bad = _pair("1a", _record(kind, where, params))
    serial = str(where.meter_serial)
    before = (
        _used(sim, bad, serial, START, FAULT_FROM - 1),
        _used(sim, clean, serial, START, FAULT_FROM - 1),
    )
    assert before[0] == before[1]
    during_bad = _used(sim, bad, serial, FAULT_FROM - 1, FAULT_TO - 1)
    during_clean = _used(sim, clean, serial, FAULT_FROM - 1, FAULT_TO - 1)
    assert during_clean > 10
    if kind == "magnet":
        assert during_bad == pytest.approx(0.4 * during_clean, abs=2)
        module = list(sim.mesh.serials).index(where.module_serial)
        assert bad.tamper[FAULT_FROM - START, module]
        assert not bad.tamper[0, module]
        assert any(code == 1 and m == where.module_serial for m, _, code in bad.events)
    elif kind == "stuck_meter":
        assert during_bad == 0
    else:
        # the last day ends at the full error whatever the shape; a settled or stepped
        # drift is there on the first day already, a ramp only a third of the way
        last_day_bad = _used(sim, bad, serial, FAULT_TO - 25, FAULT_TO - 1)
        last_day_clean = _used(sim, clean, serial, FAULT_TO - 25, FAULT_TO - 1)
        first_day = _used(sim, bad, serial, FAULT_FROM - 1, FAULT_FROM + 23) / _used(
            sim, clean, serial, FAULT_FROM - 1, FAULT_FROM + 23
        )
        if params.get("shape") in ("settle", "step"):
            assert last_day_bad / last_day_clean == pytest.approx(0.85, abs=0.03)
            assert first_day < 0.9 if params["shape"] == "step" else first_day < 0.95
        else:
            assert last_day_bad / last_day_clean == pytest.approx(0.86, abs=0.03)
            assert first_day > 0.93


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("leak", {"rate_m3_h": 0.9}),
        ("leak", {"rate_m3_h": 0.9, "shape": "growing"}),
        ("leak", {"rate_m3_h": 0.9, "shape": "pressure"}),
        ("unauthorised_connection", {"share": 0.1, "return_dt_k": 30.0}),
        ("unauthorised_connection", {"share": 0.1, "shape": "weather", "return_dt_k": 12.0}),
        ("unauthorised_connection", {"share": 0.1, "shape": "draw"}),
        ("building_meter_drift", {"error_at_end": 0.2}),
    ],
)
def test_building_meter_faults(kind: str, params: dict[str, object]) -> None:
    """Leaks and taps after the building meter add to it; a drifting one over-registers.
    Water that never comes back (a leak, a draw) leaves at the supply temperature: the
    meter registers its volume at the returning water's ΔT, which it does not change;
    a tapped-in consumer returning its water cooler lowers the building's return."""
    where = _meter("1a", "building")
    sim, clean, bad = _pair("1a", _record(kind, where, params))
    serial = str(where.meter_serial)
    extra = _used(sim, bad, serial, FAULT_FROM - 1, FAULT_TO - 1) - _used(
        sim, clean, serial, FAULT_FROM - 1, FAULT_TO - 1
    )
    span = slice(FAULT_FROM - START, FAULT_TO - START)
    flats = clean.truth.flat_kwh[span].sum()
    lost_m3 = bad.truth.building_m3[span] - clean.truth.building_m3[span]
    per_m3 = clean.truth.building_kwh[span] / clean.truth.building_m3[span]
    dt_moved = bad.truth.building_return_c[span] - clean.truth.building_return_c[span]
    before = slice(0, FAULT_FROM - START)
    assert np.array_equal(bad.truth.building_kwh[before], clean.truth.building_kwh[before])
    if kind == "leak":
        assert extra == pytest.approx(float((lost_m3 * per_m3).sum()), abs=2)
        assert np.allclose(dt_moved, 0.0)
        if params.get("shape") == "growing":
            assert lost_m3[-1] > 2 * lost_m3[0]
        elif params.get("shape") == "pressure":
            assert lost_m3.max() > 1.4 * lost_m3.min()
        else:
            assert lost_m3 == pytest.approx(np.full(48, 0.9))
    elif params.get("shape") == "draw":
        assert extra == pytest.approx(float((lost_m3 * per_m3).sum()), rel=0.02)
        share = lost_m3 / clean.truth.building_m3[span]
        assert share == pytest.approx(np.full(48, 0.1), rel=0.01)
    elif kind == "unauthorised_connection":
        if params.get("shape") == "weather":
            assert extra > 0.05 * flats
        else:
            assert extra == pytest.approx(0.1 * flats, rel=0.01)
        assert (dt_moved < 0).all() if params["return_dt_k"] > 20 else (dt_moved > 0).all()
    else:
        assert extra > 0.05 * flats
    assert np.array_equal(bad.truth.flat_kwh, clean.truth.flat_kwh)  # the flats see nothing


def test_clogged_riser() -> None:
    """A clogged riser's meter registers less flow and its flats get less heat."""
    where = _meter("2a", "riser")
    sim, clean, bad = _pair("2a", _record("clogged_riser", where, {"flow_factor": 0.4}))
    serial = str(where.meter_serial)
    ratio = _used(sim, bad, serial, FAULT_FROM - 1, FAULT_TO - 1) / _used(
        sim, clean, serial, FAULT_FROM - 1, FAULT_TO - 1
    )
    assert ratio == pytest.approx(0.4, abs=0.01)
    on = [i for i, (_, r) in enumerate(sim.model.radiators) if r == where.riser]
    span = slice(FAULT_FROM - START, FAULT_TO - START)
    assert bad.truth.radiator_kwh[span, on].sum() < 0.9 * clean.truth.radiator_kwh[span, on].sum()


@pytest.mark.parametrize("kind", ["dead_module", "battery_depletion"])
def test_module_faults(kind: str) -> None:
    """A dying module goes silent at its end (battery first falls to the cut-off) and the
    modules that routed through it are rerouted."""
    spec = generate_city(CityConfig(preset="reference", layout_mix={"2a": 1}))[0]
    probe = BuildingSim(spec, 1, START)
    busiest = int(probe.base_routes.relayed.argmax())
    serial = int(probe.mesh.serials[busiest])
    where = Where(module_serial=serial)
    _, clean, bad = _pair("2a", _record(kind, where, {}, end=kind == "battery_depletion"))
    silent_from = (FAULT_FROM if kind == "dead_module" else FAULT_TO) - START
    assert not bad.status_ok[silent_from:, busiest].any()
    assert bad.status_ok[: FAULT_FROM - START, busiest].mean() > 0.9
    children = clean.parent[0] == serial
    assert children.any()
    assert not (bad.parent[silent_from:] == serial).any()
    assert bad.status_ok[silent_from:, children].mean() > 0.9
    if kind == "battery_depletion":
        assert bad.battery_mv[silent_from - 1, busiest] <= CUTOFF_MV + 5
        assert bad.battery_mv[0, busiest] > 3300
