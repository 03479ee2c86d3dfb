"""The group-excess detector on constructed series: fires on each cause, names the meter,
stays silent on noise, weekends, away flats and cold snaps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from balans_balance.analysis import merge_findings
from balans_balance.bands import learn_band
from balans_balance.detectors.leak_tapping_balance_meter import diagnose_group, follows_use
from balans_balance.episodes import find_episodes
from balans_balance.findings import Finding

START = 600  # the fault begins after 25 days of normal history
World = Callable[..., object]


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("cold_snap", [False, True])
def test_silent_on_normal_noise(world, seed: int, cold_snap: bool) -> None:
    """No episode on 35 days of noisy use with weekends, away flats (and a cold snap)."""
    assert diagnose_group(world(seed=seed, cold_snap=cold_snap).series()) == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leak_found_and_closed(world, seed: int) -> None:
    """A constant 3 kWh/h leak for 100 h is one leak episode, closed after it ends."""
    w = world(seed=seed)
    extra = np.zeros(w.true.shape[1])
    extra[START : START + 100] = 3.0
    (d,) = diagnose_group(w.series(extra))
    assert d.kind == "leak"
    assert START <= d.episode.start <= START + 12
    assert not d.episode.active
    assert d.episode.end <= START + 100 + 24


def test_follows_use_tells_constant_from_proportional() -> None:
    """A constant flow has no significant slope against the use; a share of the use has."""
    rng = np.random.default_rng(4)
    use = 100 * (1 + 0.06 * np.sin(np.arange(40) / 3))
    t_const, _ = follows_use(3 + rng.normal(0, 0.3, 40), use)
    t_prop, share = follows_use(0.05 * use * rng.normal(1, 0.02, 40), use)
    assert abs(t_const) < 3 <= t_prop
    assert 0.8 < share < 1.2


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unauthorised_connection(world, seed: int) -> None:
    """A consumer tapped in before the meters (5 % of the flats' use) is not a leak."""
    w = world(seed=seed)
    extra = 0.05 * w.true.sum(axis=0)
    extra[:START] = 0
    (d,) = diagnose_group(w.series(extra))
    assert d.kind == "unauthorised_connection"
    assert d.episode.active


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_balance_meter_drift(world, seed: int) -> None:
    """The balance meter drifting to +8 % over ten days is blamed on the balance meter."""
    w = world(seed=seed)
    ramp = np.clip((np.arange(w.true.shape[1]) - START) / 240, 0, 1)
    (d,) = diagnose_group(w.series(0.08 * w.true.sum(axis=0) * ramp))
    assert d.kind == "faulty_balance_meter"


def test_band_freezes_during_an_anomaly() -> None:
    """A level shift stays outside a band that does not learn it (day/night apart)."""
    rng = np.random.default_rng(0)
    values = rng.normal(0.1, 0.002, 40 * 24)
    values[600:] += 0.05
    classes = (np.arange(values.size) % 24 < 6).astype(np.int_)
    band = learn_band(values, classes, window=14 * 24, k=4, min_scale=0.001)
    assert band.anomalous[600:].mean() > 0.99
    assert band.anomalous[24 * 3 : 600].mean() < 0.01


def test_episodes_bridge_short_gaps_and_close_after_quiet() -> None:
    """Runs of 6+ hours open an episode; 12 quiet hours close it; a late one stays active."""
    mask = np.zeros(100, bool)
    mask[10:30] = True
    mask[31:40] = True
    mask[60:63] = True
    mask[90:] = True
    first, last = find_episodes(mask, min_run=6, quiet_to_close=12)
    assert (first.start, first.confirmed, first.end, first.active) == (10, 15, 39, False)
    assert (last.start, last.active) == (90, True)


def test_evidence_json_has_no_infinity() -> None:
    """Non-finite figures in evidence become null (jsonb refuses NaN and Infinity)."""
    from balans_balance.alerts import evidence_json

    assert evidence_json({"noise": float("inf"), "x": [1.0, float("nan")]}) == (
        '{"noise": null, "x": [1.0, null]}'
    )


def test_a_meters_finding_of_another_kind_after_its_last_one_is_a_fault_of_its_own() -> None:
    """A register standing still after the meter's drift episode ended is a second
    fault (its own cause); two rules blaming one meter over overlapping hours are one."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def found(kind: str, rule: str, start: int, end: int) -> Finding:
        return Finding(
            kind=kind,
            cause_key="meter:7",
            first_hour=t0 + timedelta(hours=start),
            last_hour=t0 + timedelta(hours=end),
            active=False,
            summary=kind,
            meter_id=7,
            reason_code=f"{kind}.{rule}",
        )

    drift = found("drifting_meter", "balance_confirmed", 0, 143)
    still = found("stuck_meter", "register_still", 145, 240)
    apart = merge_findings([still, drift])
    assert [(f.kind, f.cause_key) for f in apart] == [
        ("drifting_meter", "meter:7"),
        ("stuck_meter", "meter:7:stuck_meter"),
    ]
    overlapping = found("stuck_meter", "register_still", 100, 240)
    (one,) = merge_findings([drift, overlapping])
    assert (one.kind, one.last_hour) == ("drifting_meter", t0 + timedelta(hours=240))


def test_no_cause_key_comes_out_active_twice() -> None:
    """The alert store keeps one open alert per cause key (a unique index): a device's
    faults after gaps, and a group fault found in two slots, never give one key twice
    among the active findings."""
    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def found(kind: str, key: str, start: int, end: int, active: bool) -> Finding:
        return Finding(
            kind=kind,
            cause_key=key,
            first_hour=t0 + timedelta(hours=start),
            last_hour=t0 + timedelta(hours=end),
            active=active,
            summary=kind,
            meter_id=11 if key.startswith("meter") else None,
            group_id=5,
            reason_code=f"{kind}.x",
        )

    out = merge_findings(
        [
            # a clog, then (after a gap) a register standing still that counts as going on,
            # then a magnet on the same meter later still
            found("clogged_riser", "meter:11", 0, 70, False),
            found("stuck_meter", "meter:11", 300, 420, True),
            found("magnet", "meter:11", 440, 480, True),
            found("stuck_meter", "meter:11", 500, 520, True),
            # one balance-meter fault found in two slots, and the slot's earlier episode
            found("faulty_balance_meter", "group:5:faulty_balance_meter", 200, 480, True),
            found("faulty_balance_meter", "group:5:faulty_balance_meter:1", 20, 40, False),
            found("faulty_balance_meter", "group:5:faulty_balance_meter:1", 200, 480, True),
        ]
    )
    active = [f.cause_key for f in out if f.active]
    assert len(active) == len(set(active)), active
    assert sorted(active) == [
        "group:5:faulty_balance_meter",
        "meter:11:magnet",
        "meter:11:stuck_meter",
    ]
    (still,) = [f for f in out if f.cause_key == "meter:11:stuck_meter"]
    assert still.last_hour == t0 + timedelta(hours=520)  # the later standing still joined it
    assert [f.cause_key for f in out if not f.active] == [
        "group:5:faulty_balance_meter:1",
        "meter:11",
    ]
