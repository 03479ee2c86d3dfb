"""The rules that need no history before a fault, on constructed registers."""

from __future__ import annotations

import numpy as np

from balans_balance.detectors.long_standing import never_present, still_registers, tampered

HOURS = 14 * 24


def _registers(members: int = 6, seed: int = 3) -> np.ndarray:
    """Hourly increments of 1-unit registers using 0.5-1.5 units an hour."""
    rng = np.random.default_rng(seed)
    use = rng.uniform(0.5, 1.5, (members, 1)) * rng.lognormal(0, 0.2, (members, HOURS))
    return np.diff(np.floor(np.cumsum(use, axis=1)), axis=1, prepend=0)


def test_register_still_from_before_and_since_an_hour() -> None:
    """A register still all along is dated "before the data read" (start 0) and misses
    nothing the baseline does not already hold; one still since hour 200 is dated there
    and misses about its usual share of the others' use."""
    raw = _registers()
    raw[1] = 0.0
    raw[4, 200:] = 0.0
    found = {r.member: r for r in still_registers(raw, np.ones(6))}
    assert sorted(found) == [1, 4]
    assert found[1].start == 0
    assert found[1].missed.sum() == 0
    assert 195 <= found[4].start <= 200
    usual = raw[4, :200].sum() / 200
    assert 0.7 * usual * 136 <= found[4].missed.sum() <= 1.3 * usual * 136


def test_silent_or_briefly_still_registers_are_not_stuck() -> None:
    """A member that did not report (NaN: a silence, reported as such) and one still for
    two days only raise nothing; nor does a register whose peers used almost nothing."""
    raw = _registers()
    raw[2, 100:] = np.nan
    raw[3, -48:] = 0.0
    assert still_registers(raw, np.ones(6)) == []
    sparse = np.tile(np.where(np.arange(HOURS) % 50 == 0, 1.0, 0.0), (6, 1))
    sparse[5] = 0.0  # the peers used 6 pulses each over its still run: too few to tell
    assert still_registers(sparse, np.ones(6)) == []


def test_tamper_flag_names_the_meter_that_lost_its_use() -> None:
    """A four-channel module's flag covers four meters; only the one slowed to 40 % is
    the magnet."""
    raw = _registers()
    raw[0, 250:] = np.floor(raw[0, 250:] * 0.4)
    tamper = np.zeros_like(raw, dtype=bool)
    tamper[0:4, 250:] = True
    (found,) = tampered(raw, tamper)
    assert found.member == 0
    assert found.episode.start == 250
    assert found.episode.active


def test_never_present() -> None:
    present = np.ones((3, HOURS), bool)
    present[1] = False
    present[2, :10] = False
    assert never_present(present) == [1]
