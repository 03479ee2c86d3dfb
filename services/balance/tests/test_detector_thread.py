"""The detectors run on a thread of their own (analysis.findings_off_the_loop): the event loop
stays free meanwhile to renew the partitions' leases, fetch and acknowledge, and the CPU they
took (the partitions' weights) comes back with their findings."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from balans_balance import analysis
from balans_balance.loading import BuildingData, Reporting

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOURS = 96


def _building_without_meters() -> BuildingData:
    hours = [datetime(2026, 1, 5, tzinfo=UTC) + timedelta(hours=h) for h in range(HOURS)]
    none = np.zeros((0, HOURS))
    return BuildingData(
        building_id=1,
        hours=hours,
        night=np.zeros(HOURS, dtype=bool),
        groups=[],
        meter_index={},
        consumption=none,
        supply_c=np.full(HOURS, 70.0),
        return_c=np.full(HOURS, 50.0),
        units={},
        roles={},
        utilities={},
        flat_water=set(),
        site_id=1,
        timezone="UTC",
        reporting=Reporting([], {}, {}, none.astype(bool), none, {}, {}),
        tamper={},
        meter_serials={},
        pulse_weights={},
        riser_dt={},
        sensor_pairs=[],
    )


async def test_the_event_loop_runs_while_the_detectors_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The detectors here wait for a callback the event loop runs: had they run on the loop's
    thread, it could not have run until they returned."""
    loop_ran = threading.Event()
    seen: list[str] = []
    detectors = analysis.building_findings

    def waiting_for_the_loop(*args: object) -> object:
        seen.append(threading.current_thread().name)
        assert loop_ran.wait(timeout=60), "the event loop stood still while the detectors ran"
        return detectors(*args)

    monkeypatch.setattr(analysis, "building_findings", waiting_for_the_loop)
    asyncio.get_running_loop().call_soon(loop_ran.set)
    findings, results, cpu_s = await analysis.findings_off_the_loop(
        _building_without_meters(), None, frozenset()
    )
    assert len(seen) == 1
    assert seen[0].startswith("balance-detectors")
    assert (findings, results) == ([], [])
    assert cpu_s > 0
