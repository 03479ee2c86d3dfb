"""Readings of a meter whose verification (calibration) has expired, and the methodology's
rule for them (``expired_meter_readings``, docs/allocation.md):

- ``measured`` (default): they count as any other reading; the explanation trail marks
  the meter as expired (its ``verification_due_on``).
- ``estimated``: from the day its verification expired, a flat or riser meter's hours
  count as missing, so allocation estimates them like any hour without data (flags
  ``NO_DATA`` and ``ESTIMATED``). A building meter's readings always count: without them
  there is no heat to share.

A meter's verification expires on its ``verification_due_on`` (verified_on or
installed_on plus its interval, docs/provisioning.md), taken from 00:00 UTC of that day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time

import numpy as np

from balans_allocation.building import Meter
from balans_allocation.methodology import Methodology

SUBSCRIBER_ROLES = ("flat", "riser")


def expired_from(due_on: date | None) -> datetime | None:
    """The instant a verification due on ``due_on`` has expired."""
    return None if due_on is None else datetime.combine(due_on, time(), UTC)


def expired_hours(meters: Sequence[Meter], start: datetime, hours: int) -> np.ndarray:
    """bool [meter, hour]: hour i of a subscriber meter starts after its verification
    expired."""
    hour_starts = np.arange(hours)
    mask = np.zeros((len(meters), hours), dtype=bool)
    for row, meter in enumerate(meters):
        expiry = expired_from(meter.verification_due_on)
        if expiry is None or meter.role not in SUBSCRIBER_ROLES:
            continue
        mask[row] = hour_starts >= (expiry - start).total_seconds() / 3600
    return mask


def apply_rule(
    value: np.ndarray, meters: Sequence[Meter], start: datetime, rule: Methodology
) -> np.ndarray:
    """``value`` [meter, hour] with the expired hours as missing (NaN) when the methodology
    counts them as estimated; unchanged otherwise."""
    if rule.expired_meter_readings != "estimated":
        return value
    return np.where(expired_hours(meters, start, value.shape[1]), np.nan, value)
