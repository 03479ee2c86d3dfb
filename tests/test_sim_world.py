"""dmesh-sim: the city generator, determinism, energy conservation, the mesh's limits and
subnets, and the modules it cannot route."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from balans_db.topology import (
    HARDWARE_LIMITS,
    EquipmentPlan,
    HardwareLimitError,
    plan_equipment,
    share_subnets,
)
from balans_sim import mesh
from balans_sim.api import prepare
from balans_sim.city import CityConfig, generate_city
from balans_sim.climate import hour_index
from balans_sim.engine import BuildingSim, Chunk, CitySim
from balans_sim.faults import read_ground_truth, write_ground_truth
from balans_sim.instruments import pulse_weights
from balans_sim.mesh import MAX_HOPS

START = hour_index(datetime(2026, 1, 12, tzinfo=UTC))


def _digest(chunks: list[Chunk]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        for a in (
            c.pulse_count,
            c.pulse_ok,
            c.supply_centi_c,
            c.return_centi_c,
            c.temp_ok,
            c.battery_mv,
            c.parent,
            c.status_ok,
        ):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(c.events).encode())
    return h.hexdigest()


def _run(config: CityConfig, steps: list[int]) -> list[list[Chunk]]:
    sim = CitySim(generate_city(config), config.seed, START)
    sim.schedule_faults(sum(steps), faults_per_week=3.0)
    return [sim.advance(n) for n in steps]


def test_same_seed_same_city_and_identical_readings() -> None:
    """Two runs with one seed give the same buildings and byte-identical readings."""
    config = CityConfig(seed=7, buildings=3)
    assert generate_city(config) == generate_city(config)
    first = _digest(_run(config, [48])[0])
    assert first == _digest(_run(config, [48])[0])
    assert first != _digest(_run(CityConfig(seed=8, buildings=3), [48])[0])


def test_readings_do_not_depend_on_step_size() -> None:
    """48 hours at once and 48 single hours give the same registers and temperatures."""
    config = CityConfig(seed=3, buildings=2)
    whole = _run(config, [48])[0]
    steps = _run(config, [1] * 48)
    for b, chunk in enumerate(whole):
        counts = np.vstack([s[b].pulse_count for s in steps])
        temps = np.vstack([s[b].supply_centi_c for s in steps])
        assert np.array_equal(counts, chunk.pulse_count)
        assert np.array_equal(temps, chunk.supply_centi_c)


def test_building_that_exceeds_a_concentrator_is_rejected() -> None:
    """A block with more than 720 meters is refused with a message naming the limit."""
    config = CityConfig(
        buildings=1, layout_mix={"1a": 1}, floors=(25, 25), entrances=(6, 6), flats_per_floor=(4, 4)
    )
    with pytest.raises(HardwareLimitError, match="720 meters per concentrator"):
        generate_city(config)


@pytest.mark.parametrize("layout", ["1a", "2a"])
def test_building_meter_is_flats_plus_common_plus_losses(layout: str) -> None:
    """Registered building heat = registered flats + common + losses, within quantisation."""
    spec = generate_city(CityConfig(preset="reference", layout_mix={layout: 1}))[0]
    sim = BuildingSim(spec, seed=1, start_hour=START)
    chunk = sim.advance(np.arange(START, START + 72), CitySim([], 1, START).outdoor)
    t = chunk.truth
    assert np.allclose(t.building_kwh, t.flat_kwh.sum(1) + t.common_kwh + t.losses_kwh)
    meters = sim.plan.meters
    used = (chunk.pulse_count[-1] - chunk.pulse_count[0]) * pulse_weights(sim.plan)
    building = next(i for i, m in enumerate(meters) if m.role == "building" and m.utility == "heat")
    expected = (t.flat_kwh.sum(1) + t.common_kwh + t.losses_kwh)[1:].sum()
    assert abs(used[building] - expected) <= 2.0  # one pulse at each end
    if layout == "1a":
        flats = [i for i, m in enumerate(meters) if m.role == "flat" and m.utility == "heat"]
        flats_registered = used[flats].sum()
        assert abs(flats_registered - t.flat_kwh[1:].sum()) <= len(flats)
        assert 0.03 < 1 - flats_registered / used[building] < 0.2  # common + losses share
    else:
        # single pipe: each radiator's heat = riser flow x k x its ΔT, summed per riser
        from balans_physics.water import heat_coefficient

        dt = t.supply_c[:, None] - t.riser_return_c
        k = heat_coefficient(t.supply_c[:, None], t.riser_return_c)
        riser_heat = (t.riser_m3 * k * dt).sum()
        assert riser_heat == pytest.approx(t.flat_kwh.sum(), rel=0.01)


def test_mesh_respects_hardware_limits_and_reroutes_around_a_dead_module() -> None:
    """No subnet exceeds 240 modules or 540 meters, paths stay within 30 hops, and when
    the busiest router dies every other module finds another way."""
    for spec in generate_city(CityConfig(seed=5, buildings=6, floors=(9, 12))):
        sim = BuildingSim(spec, seed=5, start_hour=START)
        plan = sim.plan
        for subnet in {m.subnet for m in plan.modules}:
            mods = {m.serial for m in plan.modules if m.subnet == subnet}
            assert len(mods) <= HARDWARE_LIMITS["modules per subnet"]
            assert (
                sum(m.module in mods for m in plan.meters) <= HARDWARE_LIMITS["meters per subnet"]
            )
        assert len(plan.meters) <= HARDWARE_LIMITS["meters per concentrator"]
        assert plan == plan_equipment(spec)
        routes = sim.base_routes
        assert (routes.hops >= 1).all()
        assert routes.hops.max() <= MAX_HOPS
        busiest = int(routes.relayed.argmax())
        repaired = sim.mesh.routes(frozenset([busiest]))
        others = np.arange(len(routes.hops)) != busiest
        assert (repaired.hops[others] >= 1).all()
        assert sim.mesh.serials[busiest] not in repaired.parent[others]


def _subnet_sizes(plan: EquipmentPlan) -> dict[int, tuple[int, int]]:
    """subnet -> (modules, meters)."""
    subnet_of = {m.serial: m.subnet for m in plan.modules}
    sizes: dict[int, tuple[int, int]] = {}
    for subnet in set(subnet_of.values()):
        modules = sum(s == subnet for s in subnet_of.values())
        meters = sum(subnet_of[m.module] == subnet for m in plan.meters)
        sizes[subnet] = (modules, meters)
    return sizes


def test_a_building_above_one_subnet_routes_every_module() -> None:
    """sim-1553-105 (244 modules, 4 entrances) needs two subnets; each covers the whole
    building from the concentrator outwards, so every module has a route (filling the
    first subnet with 240 modules left the last 4 alone at the far end, out of reach)."""
    city = generate_city(CityConfig(seed=1553, buildings=9, layout_mix={"1b": 1, "1c": 1, "2a": 2}))
    spec = next(s for s in city if s.code == "sim-1553-105")
    sim = BuildingSim(spec, seed=1553, start_hour=START)
    assert len(sim.plan.modules) > HARDWARE_LIMITS["modules per subnet"]
    sizes = _subnet_sizes(sim.plan)
    assert len(sizes) == 2
    assert max(n for n, _ in sizes.values()) - min(n for n, _ in sizes.values()) <= 1
    assert (sim.base_routes.hops >= 1).all()
    assert sim.unrouted == []


@pytest.mark.parametrize(
    ("meters_per_module", "subnets"),
    [
        ([1] * 240, 1),
        ([0] * 241, 2),
        ([2] * 500, 3),
        ([6] * 100, 2),
        ([4] * 400, 3),
        ([6, 0] * 100, 3),
    ],
)
def test_subnets_are_as_few_as_the_limits_allow_and_within_them(
    meters_per_module: list[int], subnets: int
) -> None:
    """Modules are interleaved over the fewest subnets that keep every subnet within 240
    modules and 540 meters (every other module carrying 6 meters: two subnets would put
    600 on one, so three)."""
    share = share_subnets(meters_per_module)
    assert sorted(set(share)) == list(range(subnets))
    for subnet in range(subnets):
        on = [i for i, s in enumerate(share) if s == subnet]
        assert len(on) <= HARDWARE_LIMITS["modules per subnet"]
        assert sum(meters_per_module[i] for i in on) <= HARDWARE_LIMITS["meters per subnet"]


def test_a_module_without_a_route_is_logged_and_in_the_ground_truth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With walls no radio crosses, the modules beyond the concentrator's entrance have no
    route: the simulator logs them and opens the ground truth with a lasting ``no_route``
    record for each, from the first hour; they never report, the others do."""
    monkeypatch.setattr(mesh, "WALL_LOSS_DB", 200.0)
    start = datetime(2026, 1, 12, tzinfo=UTC)
    with capture_logs() as logs:
        sim, truth = prepare(CityConfig(seed=3, buildings=1, entrances=(3, 3)), start, 24)
    building = sim.buildings[0]
    beyond = {
        m.serial
        for m in building.plan.modules
        if building.mesh.entrance[1 + building.module_pos[m.serial]] > 1
    }
    assert beyond
    assert {m.serial for m in building.unrouted} == beyond
    assert [r.where.module_serial for r in truth] == [m.serial for m in building.unrouted]
    assert {(r.kind, r.start, r.end) for r in truth} == {("no_route", start, None)}
    warned = [e for e in logs if e["log_level"] == "warning"]
    assert warned[0]["modules"] == [m.serial for m in building.unrouted]
    chunk = sim.advance(24)[0]
    silent = np.isin(chunk.status_module, [m.serial for m in building.unrouted])
    assert not chunk.status_ok[:, silent].any()
    assert chunk.status_ok[:, ~silent].any(axis=0).all()
    write_ground_truth(tmp_path / "truth.jsonl", truth)
    assert read_ground_truth(tmp_path / "truth.jsonl") == truth
