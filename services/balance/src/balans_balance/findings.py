"""What a detector reports: one :class:`Finding` per cause it sees in the analysed window.

The alert store turns findings into alerts: the ``cause_key`` is what de-duplicates (one
open alert per cause), ``active`` says whether the cause still holds at the end of the
window (if not, its alert is closed).
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

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown alert kind {self.kind!r}")
