"""What a detector reports: one :class:`Finding` per cause it sees in the analysed window.

The alert store turns findings into alerts: the ``cause_key`` is what de-duplicates (one
open alert per cause), ``active`` says whether the cause still holds at the end of the
window (if not, its alert is closed). ``reason_code`` names the one rule that fired
(``<kind>.<rule>``, the codes are listed in docs/balance.md) and ``reason_params`` the
figures its sentence needs, so a page can say it in the reader's language;
``began_before`` says the fault was already there at the first hour read (its true
start is older: "since before <first_hour>").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

KINDS = (
    "leak",
    "unauthorised_connection",
    "stuck_meter",
    "magnet",
    "drifting_meter",
    "faulty_balance_meter",
    "clogged_riser",
    "dead_module",
    "low_battery",
    "concentrator_silent",
    "missing_data",
    "consumer_leak",
    "verification_due",  # detectors/verification_due.py
    "faulty_sensor",  # detectors/sensor_faults.py
)


@dataclass(frozen=True)
class Finding:
    kind: str
    cause_key: str
    first_hour: datetime
    last_hour: datetime
    active: bool
    summary: str
    building_id: int | None = None
    group_id: int | None = None
    meter_id: int | None = None
    module_serial: int | None = None
    severity: str = "warning"
    evidence: dict[str, Any] = field(default_factory=dict)
    reason_code: str = ""
    reason_params: dict[str, Any] = field(default_factory=dict)
    detected_hour: datetime | None = None
    began_before: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        if not self.reason_code.startswith(f"{self.kind}."):
            raise ValueError(f"reason {self.reason_code!r} is not one of a {self.kind}")
