"""Silence and battery detectors: judged against each source's own reporting pattern."""

from __future__ import annotations

import numpy as np

from balans_balance.detectors.silences_and_batteries import (
    ReportingSettings,
    battery_warning,
    reporting_findings,
    silences,
)

HOURS = 24 * 14
HOD = np.arange(HOURS) % 24
CFG = ReportingSettings()


def test_hourly_source_silence_found_within_hours() -> None:
    """A module that always reports and stops is alarmed within a few hours."""
    present = np.ones(HOURS, bool)
    present[200:] = False
    (ep,) = silences(present, HOD, CFG)
    assert ep.start == 200
    assert ep.confirmed - ep.start <= 3
    assert ep.active


def test_sparse_reporter_is_not_alarmed_between_its_reports() -> None:
    """A meter that reports every sixth hour, or only by day, raises nothing."""
    assert silences(HOD % 6 == 0, HOD, CFG) == []
    assert silences((HOD >= 8) & (HOD < 18), HOD, CFG) == []


def test_sparse_reporter_alarmed_when_it_misses_its_own_hours() -> None:
    """The every-sixth-hour meter is alarmed once it misses several of its slots."""
    present = HOD % 6 == 0
    present[240:] = False
    (ep,) = silences(present, HOD, CFG)
    assert ep.confirmed >= 240 + 6
    assert ep.confirmed <= 240 + 24


def test_battery_low_and_trend() -> None:
    """A flat battery stays quiet; one falling 2 mV/h is warned before the low mark."""
    rng = np.random.default_rng(0)
    flat = 3550 + rng.normal(0, 3, HOURS)
    assert battery_warning(flat, CFG) is None
    falling = flat.copy()
    falling[100:] = 3550 - 2.0 * np.arange(HOURS - 100)
    warned = battery_warning(falling, CFG)
    assert warned is not None
    assert falling[warned] > CFG.low_battery_mv


def test_most_specific_explanation() -> None:
    """A silent concentrator is one alert, not one per module; a dead module is not also
    a missing-data alert for each of its meters; a lone silent meter is missing data."""
    modules = [1, 2, 3]
    present = np.ones((3, HOURS), bool)
    battery = np.full((3, HOURS), 3550.0)
    meters = {10: np.ones(HOURS, bool), 20: np.ones(HOURS, bool), 30: np.ones(HOURS, bool)}
    present[:, 100:130] = False  # concentrator down for 30 h
    for m in meters.values():
        m[100:130] = False
    present[1, 200:] = False  # module 2 dies
    meters[20][200:] = False
    meters[30][250:] = False  # module 3 reports status, meter 30 stops
    found = reporting_findings(
        modules, {1: 7, 2: 7, 3: 7}, present, battery, {10: 1, 20: 2, 30: 3}, meters, HOD
    )
    kinds = sorted((f.kind, f.module, f.meter) for f in found)
    assert kinds == [
        ("concentrator_silent", None, None),
        ("dead_module", 2, None),
        ("missing_data", 3, 30),
    ]
