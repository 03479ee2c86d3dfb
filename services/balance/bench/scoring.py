"""Score alerts against the simulator's ground truth: precision, recall, time to detect,
and whether the alert names the faulty device.

**Strict rules** (the figures reported): a ground-truth fault and an alert match when

- they are in the same building and the alert's kind is the one the fault should raise
  (or one of the kinds its ``evidence.also_possible`` says the data fits as well: "leak
  or unauthorised draw");
- the alert names the faulty device where there is one: the meter (a stuck, slowed or
  drifting meter, the building meter of a ``building_meter_drift``, the riser meter of
  a clogged riser), the module (battery, dead module); a leak or a tapped-in consumer
  has no faulty device, so its alert must be on the group whose balance meter is the
  building meter that sees it;
- the alert begins after the fault began: it is raised (``detected_hour``) at or after
  the fault's start, and the episode it dates (``first_hour``) starts no more than
  ``early`` before it (the peers' daily sums date a fault only to its day);
- it begins before the fault ended plus ``late`` (smoothing, a fault seen late).

Time to detect is from the fault's start to the first matching alert's
``detected_hour``. *Named* is, over the faults that an alert of the right kind and time
matches (device aside), the share whose alert names the faulty device.

A ``dead_module`` alert starting when a ``battery_depletion`` ends (the module dies
then, by the simulator's definition) on the same module is a true alert, counted under
neither kind's recall.

**Lenient rules** (:data:`LENIENT`, the scoring before issue 20, printed once beside the
strict figures for comparison): building and kind, hours overlapping with 6 h early and
36 h late allowed, no device.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
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
    # a module the simulator's equipment plan leaves without a route: silent from the start
    "no_route": "dead_module",
    # a faulty_sensor alert is scored by the shape it names (``evidence.sensor_fault``)
    "displaced_sensor": "faulty_sensor.displaced",
    "swapped_sensors": "faulty_sensor.swapped",
    "detached_sensor": "faulty_sensor.detached",
    "sensor_drift": "faulty_sensor.drifting",
    "frozen_sensor": "faulty_sensor.frozen",
}
HEADLINE = ("leak", "stuck_meter", "magnet", "unauthorised_connection", "meter_drift")
NAMED = ("stuck_meter", "magnet", "meter_drift")
# faults that have no faulty device: the alert must be on the building meter's group
GROUP_FAULTS = ("leak", "unauthorised_connection")
MODULE_FAULTS = ("battery_depletion", "dead_module", "no_route")
# sensor faults: the alert must name the pair's module (which also names its flat and riser)
SENSOR_FAULTS = (
    "displaced_sensor",
    "swapped_sensors",
    "detached_sensor",
    "sensor_drift",
    "frozen_sensor",
)


@dataclass(frozen=True)
class Truth:
    kind: str
    building: str
    start: datetime
    end: datetime
    meter_serial: str | None
    module_serial: int | None = None
    shape: str | None = None  # the simulator's shape of the fault (params.shape), if any


@dataclass(frozen=True)
class Raised:
    kind: str
    building: str
    first_hour: datetime
    last_hour: datetime
    detected_hour: datetime
    meter_serial: str | None
    module_serial: int | None = None
    group_meter_serial: str | None = None  # the balance meter of the alert's group
    # kinds the alert says the data fits as well (evidence.also_possible: "leak or
    # unauthorised draw"); it matches a fault of any of them
    also: tuple[str, ...] = ()
    building_id: int = 0  # the building's id in the run's database (its balance turn)


@dataclass(frozen=True)
class Rules:
    strict: bool
    early: timedelta
    late: timedelta


STRICT = Rules(strict=True, early=timedelta(hours=24), late=timedelta(hours=36))
LENIENT = Rules(strict=False, early=timedelta(hours=6), late=timedelta(hours=36))


@dataclass
class KindScore:
    truths: int = 0
    found: int = 0
    alerts: int = 0
    true_alerts: int = 0
    found_any_device: int = 0  # matched by kind and time, whatever device the alert names
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


def names_device(t: Truth, a: Raised) -> bool:
    """Does the alert name the fault's device (or the group that sees a group fault)?"""
    if t.kind in GROUP_FAULTS or (t.kind == "building_meter_drift" and a.meter_serial is None):
        return a.group_meter_serial == t.meter_serial
    if t.kind in MODULE_FAULTS or t.kind in SENSOR_FAULTS:
        return a.module_serial == t.module_serial
    return a.meter_serial == t.meter_serial


def _in_time(t: Truth, a: Raised, rules: Rules) -> bool:
    if EXPECTED_KIND[t.kind] in (a.kind, *a.also):
        if not rules.strict:
            return a.first_hour <= t.end + rules.late and a.last_hour >= t.start - rules.early
        return (
            a.detected_hour >= t.start
            and a.first_hour >= t.start - rules.early
            and a.first_hour <= t.end + rules.late
        )
    # a depleted battery ends with the module dying: its dead_module alert is true too
    return (
        t.kind == "battery_depletion"
        and a.kind == "dead_module"
        and abs(a.first_hour - t.end) <= rules.late
    )


def matches(t: Truth, a: Raised, rules: Rules = STRICT, *, device: bool = True) -> bool:
    if t.building != a.building or not _in_time(t, a, rules):
        return False
    return not (rules.strict and device) or names_device(t, a)


def score(truths: list[Truth], raised: list[Raised], rules: Rules = STRICT) -> dict[str, KindScore]:
    """Per ground-truth kind (alerts are counted under the kind that should raise them)."""
    table = {k: KindScore() for k in EXPECTED_KIND}
    # an alert kind two fault kinds expect (dead_module) counts under the first of them
    by_alert_kind = {v: k for k, v in reversed(EXPECTED_KIND.items())}
    for t in truths:
        s = table[t.kind]
        s.truths += 1
        timely = sorted(
            (a for a in raised if matches(t, a, rules, device=False)),
            key=lambda a: a.detected_hour,
        )
        named = [a for a in timely if names_device(t, a)]
        found = named if rules.strict else timely
        if timely:
            s.found_any_device += 1
            s.named += bool(named)
        if found:
            s.found += 1
            s.hours_to_detect.append((found[0].detected_hour - t.start) / timedelta(hours=1))
    for a in raised:
        kind = by_alert_kind.get(a.kind)
        if kind is None:
            continue
        s = table[kind]
        s.alerts += 1
        if any(matches(t, a, rules) for t in truths):
            s.true_alerts += 1
    return table


def micro(
    table: dict[str, KindScore], kinds: Iterable[str], named_kinds: Iterable[str]
) -> tuple[float, float, float]:
    """Micro-averaged precision and recall over ``kinds``, and the named-correctly share
    over ``named_kinds`` (the kinds whose alerts must name a device)."""
    rows = [table[k] for k in kinds]
    named_rows = [table[k] for k in named_kinds]
    alerts = sum(s.alerts for s in rows)
    truths = sum(s.truths for s in rows)
    named_found = sum(s.found_any_device for s in named_rows)
    return (
        sum(s.true_alerts for s in rows) / alerts if alerts else 0.0,
        sum(s.found for s in rows) / truths if truths else 0.0,
        sum(s.named for s in named_rows) / named_found if named_found else 0.0,
    )


def headline(table: dict[str, KindScore]) -> tuple[float, float, float]:
    """The last line's figures: over HEADLINE kinds (named: over the faulty-meter kinds)."""
    return micro(table, HEADLINE, NAMED)


def sensor_headline(table: dict[str, KindScore]) -> tuple[float, float, float]:
    """Over the sensor kinds."""
    return micro(table, SENSOR_FAULTS, SENSOR_FAULTS)


def all_kinds(table: dict[str, KindScore]) -> tuple[float, float, float]:
    """Over every kind."""
    return micro(table, table, table)


def is_step(t: Truth) -> bool:
    """Does the fault begin at once (not a drift, a growing leak or a draining battery)?"""
    if t.kind in ("battery_depletion", "sensor_drift"):
        return False
    if t.kind in ("meter_drift", "building_meter_drift"):
        return t.shape == "step"
    return not (t.kind == "leak" and t.shape == "growing")


def step_detect_hours(
    truths: list[Truth], raised: list[Raised], rules: Rules = STRICT
) -> list[float]:
    """Hours from start to the first matching alert of every step fault found."""
    out = []
    for t in truths:
        found = [a.detected_hour for a in raised if is_step(t) and matches(t, a, rules)]
        if found:
            out.append((min(found) - t.start) / timedelta(hours=1))
    return out


def false_alerts(truths: list[Truth], raised: list[Raised], rules: Rules = STRICT) -> list[Raised]:
    """Alerts of a scored kind that match no ground-truth fault."""
    scored = set(EXPECTED_KIND.values())
    return [a for a in raised if a.kind in scored and not any(matches(t, a, rules) for t in truths)]


def missed_faults(truths: list[Truth], raised: list[Raised], rules: Rules = STRICT) -> list[Truth]:
    """Ground-truth faults that no alert matches."""
    return [t for t in truths if not any(matches(t, a, rules) for a in raised)]


def found_as_own_kind(
    truths: list[Truth], raised: list[Raised], rules: Rules = STRICT
) -> tuple[int, int]:
    """(found, found by an alert of the fault's own kind) over the building-level faults:
    an alert matches a fault of any kind it lists as also possible ("leak or
    unauthorised draw"), so this says how many of those found were also told apart."""
    group = [t for t in truths if t.kind in (*GROUP_FAULTS, "building_meter_drift")]
    found = [t for t in group if any(matches(t, a, rules) for a in raised)]
    own = [
        t
        for t in found
        if any(matches(t, a, rules) and a.kind == EXPECTED_KIND[t.kind] for a in raised)
    ]
    return len(found), len(own)
