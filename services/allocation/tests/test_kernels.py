"""The numba kernels against their numpy twins on random data, and hand-computed cases."""

from __future__ import annotations

import kernels_numpy as ref
import numba
import numpy as np
import pytest

from balans_allocation import kernels as nb
from balans_allocation.flags import Flag
from balans_physics.water import k_factor_kwh_m3k, property_tables

RNG = np.random.default_rng(20261127)
RHO, ENTHALPY = property_tables()
MAX_DT = 6000


def _random_registers(meters: int, hours: int) -> np.ndarray:
    steps = RNG.integers(0, 50, size=(meters, hours + 1))
    regs = np.cumsum(steps, axis=1) + 2**32 - RNG.integers(1, 4000, size=(meters, 1))
    regs = regs % 2**32  # some meters roll over
    regs[RNG.random(regs.shape) < 0.1] = nb.MISSING_REGISTER
    backwards = RNG.random(regs.shape) < 0.01
    regs[backwards] = RNG.integers(0, 1000, size=backwards.sum())
    burst = RNG.random(regs.shape) < 0.01
    regs[burst] = (regs[burst] + 10**6) % 2**32
    return regs.astype(np.int64)


def test_consumption_kernel_matches_numpy() -> None:
    """Registers to hourly consumption: numba equals numpy with gaps, wraps, resets, bursts."""
    regs = _random_registers(300, 48)
    weight = RNG.choice([0.001, 0.01, 1.0], size=300)
    cap = weight * 200.0
    got_v, got_f = nb.consumption_from_registers(regs, weight, cap, nb.REGISTER_MODULUS)
    exp_v, exp_f = ref.consumption_from_registers(regs, weight, cap, nb.REGISTER_MODULUS)
    np.testing.assert_allclose(got_v, exp_v, rtol=1e-12, equal_nan=True)
    np.testing.assert_array_equal(got_f, exp_f)
    assert np.nanmin(got_v) >= 0.0
    assert (got_f & Flag.ROLLOVER).any()
    assert (got_f & Flag.BURST).any()


def test_consumption_hand_case() -> None:
    """A gap is spread evenly, a reset counts 0, edges without anchors are NO_DATA."""
    regs = np.array([[-1, 100, 110, -1, -1, 140, 5, 15, -1]], dtype=np.int64)
    value, flags = nb.consumption_from_registers(
        regs, np.array([0.5]), np.array([100.0]), nb.REGISTER_MODULUS
    )
    np.testing.assert_allclose(value[0, 1:7], [5.0, 5.0, 5.0, 5.0, 0.0, 5.0])
    assert np.isnan(value[0, 0])
    assert np.isnan(value[0, 7])
    assert flags[0, 0] & Flag.NO_DATA
    assert flags[0, 7] & Flag.NO_DATA
    assert flags[0, 2] & Flag.GAP_INTERPOLATED
    assert not flags[0, 1]
    assert flags[0, 5] & Flag.REGISTER_BACKWARDS


def _random_temperatures(hours: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    tf = RNG.integers(4000, 9000, size=(hours, columns)).astype(np.int16)
    tr = (tf - RNG.integers(-300, 3000, size=(hours, columns))).astype(np.int16)
    tf[RNG.random(tf.shape) < 0.03] = nb.MISSING_TEMP
    tr[RNG.random(tr.shape) < 0.02] = np.int16(16000)
    tf[RNG.random(tf.shape) < 0.01] = np.int16(-500)
    return tf, tr


def test_group_means_and_heat_match_numpy() -> None:
    """Riser-neighbour estimates and heat from V·ρ·Δh: numba equals numpy."""
    hours, columns, groups = 24, 500, 17
    tf, tr = _random_temperatures(hours, columns)
    group = RNG.integers(0, groups, size=columns).astype(np.int32)
    group[:3] = groups - 1  # one group of 3, likely left with no valid pair some hours
    building_f = np.full(hours, 7000, dtype=np.int16)
    building_r = np.full(hours, 5000, dtype=np.int16)
    got = nb.group_mean_temperatures(tf, tr, group, groups, building_f, building_r)
    exp = ref.group_mean_temperatures(tf, tr, group, groups, building_f, building_r)
    np.testing.assert_array_equal(got[0], exp[0])
    np.testing.assert_array_equal(got[1], exp[1])
    volume = RNG.random((hours, columns)).astype(np.float32)
    got[0][5, :] = nb.MISSING_TEMP  # an hour with no estimate at all: NaN, NO_DATA
    for in_flow in (True, False):
        args = (volume, tf, tr, got[0], got[1], group, in_flow, RHO, ENTHALPY, MAX_DT)
        heat, flags = nb.heat_from_volume(*args)
        exp_heat, exp_flags = ref.heat_from_volume(*args)
        np.testing.assert_allclose(heat, exp_heat, rtol=1e-5, atol=1e-7, equal_nan=True)
        np.testing.assert_array_equal(flags, exp_flags)
        assert np.nanmin(heat) >= 0.0


def test_heat_hand_case_equals_v_k_dt() -> None:
    """1 m3 at 70/50 °C in the return pipe is k·20 kWh; bad inputs follow the rules."""
    tf = np.array([[7000, nb.MISSING_TEMP, 5000, 9000]], dtype=np.int16)
    tr = np.array([[5000, 5000, 6000, 1000]], dtype=np.int16)
    fb_f = np.array([[6500]], dtype=np.int16)
    fb_r = np.array([[4500]], dtype=np.int16)
    volume = np.ones((1, 4), dtype=np.float32)
    group = np.zeros(4, dtype=np.int32)
    heat, flags = nb.heat_from_volume(
        volume, tf, tr, fb_f, fb_r, group, False, RHO, ENTHALPY, MAX_DT
    )
    assert heat[0, 0] == pytest.approx(k_factor_kwh_m3k(70.0, 50.0, False, 1.6) * 20.0, 1e-6)
    assert heat[0, 1] == pytest.approx(k_factor_kwh_m3k(65.0, 45.0, False, 1.6) * 20.0, 1e-6)
    assert flags[0, 1] == Flag.TEMP_MISSING | Flag.ESTIMATED
    assert heat[0, 2] == 0.0
    assert flags[0, 2] == Flag.NEGATIVE_DT
    assert flags[0, 3] == Flag.ABSURD_DT | Flag.ESTIMATED
    assert heat[0, 3] == pytest.approx(heat[0, 1])


def test_scatter_and_volume_share_match_numpy() -> None:
    """Riser shares, radiator sums and the 1c volume share: numba equals numpy."""
    hours, sources, targets, links = 12, 40, 100, 150
    source = RNG.random((hours, sources)).astype(np.float32)
    source_flags = RNG.integers(0, 4, size=(hours, sources)).astype(np.uint16)
    link_source = RNG.integers(0, sources, size=links).astype(np.int32)
    link_target = RNG.integers(0, targets, size=links).astype(np.int32)
    weight = RNG.random(links)
    args = (source, source_flags, link_source, link_target, weight, targets)
    got, got_f = nb.scatter_add(*args)
    exp, exp_f = ref.scatter_add(*args)
    np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got_f, exp_f)
    building = RNG.random(hours) * 100
    volume = RNG.random((hours, targets)).astype(np.float32)
    volume[3] = 0.0
    volume[5, 7] = np.nan
    area = RNG.random(targets) * 50 + 30
    got, got_f = nb.share_by_volume(building, volume, area)
    exp, exp_f = ref.share_by_volume(building, volume, area)
    np.testing.assert_allclose(got, exp, rtol=1e-5, equal_nan=True)
    np.testing.assert_array_equal(got_f, exp_f)
    assert np.nansum(got[3]) == pytest.approx(building[3], rel=1e-5)
    assert got_f[3, 0] & Flag.VOLUME_SHARE_FALLBACK


def test_small_inputs_run_on_one_thread() -> None:
    """A building-sized call runs on one thread, a large one on all, and the count returns."""
    before = numba.get_num_threads()
    with nb.threads_for(nb.PARALLEL_MIN_CELLS - 1):
        assert numba.get_num_threads() == 1
    with nb.threads_for(nb.PARALLEL_MIN_CELLS):
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert numba.get_num_threads() == before
