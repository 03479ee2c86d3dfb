"""Score alerts against the simulator's ground truth: precision, recall, time to detect,
and for faulty-meter cases whether the named meter is the faulty one.

A ground-truth fault and an alert match when they are in the same building, the
alert's kind is the one the fault should raise, and their hours overlap (the alert may
start ``early`` hours before the fault and last ``late`` hours after it: smoothing).
A ``dead_module`` alert starting when a ``battery_depletion`` ends (the module dies
then, by the simulator's definition) is a true alert, counted under neither kind's
recall.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta

EXPECTED_KIND = {
    "leak": "leak",
    "unauthorised_connection": "unauthorised_connection",
    "stuck_meter": "stuck_meter",
    "magnet": "magnet",
    "meter_drift": "drifting_meter",
    "building_meter_drift": "faulty_balance_meter",
    "clogged_riser": "clogged_riser",
    "battery_depletion": "low_battery",
    "dead_module": "dead_module",
}
HEADLINE = ("leak", "stuck_meter", "magnet", "unauthorised_connection", "meter_drift")
NAMED = ("stuck_meter", "magnet", "meter_drift")


@dataclass(frozen=True)
class Truth:
    kind: str
    building: str
    start: datetime
    end: datetime
    meter_serial: str | None


@dataclass(frozen=True)
class Raised:
    kind: str
    building: str
    first_hour: datetime
    last_hour: datetime
    detected_hour: datetime
    meter_serial: str | None


@dataclass
class KindScore:
    truths: int = 0
    found: int = 0
    alerts: int = 0
    true_alerts: int = 0
    named: int = 0
    hours_to_detect: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None

    @property
    def recall(self) -> float | None:
        return self.found / self.truths if self.truths else None

    @property
    def median_hours(self) -> float | None:
        return statistics.median(self.hours_to_detect) if self.hours_to_detect else None


def _overlaps(t: Truth, a: Raised, early: timedelta, late: timedelta) -> bool:
    if t.building != a.building:
        return False
    if a.kind == EXPECTED_KIND[t.kind]:
        return a.first_hour <= t.end + late and a.last_hour >= t.start - early
    # a depleted battery ends with the module dying: its dead_module alert is true too
    return (
        t.kind == "battery_depletion"
        and a.kind == "dead_module"
        and abs(a.first_hour - t.end) <= late
    )


def score(
    truths: list[Truth],
    raised: list[Raised],
    *,
    early: timedelta = timedelta(hours=6),
    late: timedelta = timedelta(hours=36),
) -> dict[str, KindScore]:
    """Per ground-truth kind (alerts are counted under the kind that should raise them)."""
    table = {k: KindScore() for k in EXPECTED_KIND}
    by_alert_kind = {v: k for k, v in EXPECTED_KIND.items()}
    for t in truths:
        s = table[t.kind]
        s.truths += 1
        matches = sorted(
            (a for a in raised if _overlaps(t, a, early, late)), key=lambda a: a.detected_hour
        )
        if matches:
            s.found += 1
            s.hours_to_detect.append((matches[0].detected_hour - t.start) / timedelta(hours=1))
            if t.kind in NAMED and any(a.meter_serial == t.meter_serial for a in matches):
                s.named += 1
    for a in raised:
        kind = by_alert_kind.get(a.kind)
        if kind is None:
            continue
        s = table[kind]
        s.alerts += 1
        if any(_overlaps(t, a, early, late) for t in truths):
            s.true_alerts += 1
    return table


def headline(table: dict[str, KindScore]) -> tuple[float, float, float]:
    """Micro-averaged precision, recall and named-correctly share over HEADLINE kinds."""
    alerts = sum(table[k].alerts for k in HEADLINE)
    true_alerts = sum(table[k].true_alerts for k in HEADLINE)
    truths = sum(table[k].truths for k in HEADLINE)
    found = sum(table[k].found for k in HEADLINE)
    named_found = sum(table[k].found for k in NAMED)
    named = sum(table[k].named for k in NAMED)
    return (
        true_alerts / alerts if alerts else 0.0,
        found / truths if truths else 0.0,
        named / named_found if named_found else 0.0,
    )


def false_alerts(
    truths: list[Truth],
    raised: list[Raised],
    *,
    early: timedelta = timedelta(hours=6),
    late: timedelta = timedelta(hours=36),
) -> list[Raised]:
    """Alerts of a scored kind that match no ground-truth fault."""
    scored = set(EXPECTED_KIND.values())
    return [
        a
        for a in raised
        if a.kind in scored and not any(_overlaps(t, a, early, late) for t in truths)
    ]


def missed_faults(
    truths: list[Truth],
    raised: list[Raised],
    *,
    early: timedelta = timedelta(hours=6),
    late: timedelta = timedelta(hours=36),
) -> list[Truth]:
    """Ground-truth faults that no alert matches."""
    return [t for t in truths if not any(_overlaps(t, a, early, late) for a in raised)]
