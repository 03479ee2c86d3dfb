"""The methodology's rule for readings of a meter whose verification expired: counted as
measured (default), or as missing from the due day so allocation estimates them; a
building meter's readings always count."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np

from balans_allocation.building import Meter
from balans_allocation.methodology import Methodology
from balans_allocation.verification import apply_rule

START = datetime(2026, 1, 1, tzinfo=UTC)


def _meter(role: str, due_on: date | None) -> Meter:
    return Meter(
        id=1, utility="heat", kind="flow_meter", role=role, pulse_weight=0.001, unit="m3",
        pipe="return", flat_id=1, riser_id=None, module_serial=1, input=0,
        verification_due_on=due_on,
    )  # fmt: skip


def test_expired_hours_are_missing_only_when_the_methodology_says_estimated() -> None:
    meters = [
        _meter("flat", date(2026, 1, 2)),  # expires after 24 hours of the window
        _meter("flat", None),
        _meter("building", date(2025, 1, 1)),
    ]
    value = np.ones((3, 48))
    unchanged = apply_rule(value, meters, START, Methodology())
    assert np.array_equal(unchanged, value)
    estimated = apply_rule(value, meters, START, Methodology(expired_meter_readings="estimated"))
    assert not np.isnan(estimated[0, :24]).any()
    assert np.isnan(estimated[0, 24:]).all()
    assert not np.isnan(estimated[1:]).any()
