"""NATS message models (pydantic): the contracts between services.

Every message is JSON with a ``schema_version``; consumers validate with these models at
the boundary and count what fails validation. Binary UPLOAD batches travel as the
protocol's own record bytes (see frames.py), not as JSON.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    schema_version: Literal[1] = 1


class ReadingsStored(Message):
    """The persister committed readings of a building for hours [hour_from, hour_to]."""

    building_id: int
    hour_from: datetime
    hour_to: datetime
    rows: int = Field(ge=0)


class AllocationComputed(Message):
    """Per-flat heat of a building is (re)computed for hours [hour_from, hour_to]."""

    building_id: int
    hour_from: datetime
    hour_to: datetime
    recomputation: bool = False


class PeriodClosed(Message):
    """A billing period [period_start, period_end) closed for a building."""

    building_id: int
    period_start: datetime
    period_end: datetime


class AlertMessage(Message):
    """An alert opened, updated or closed by a balance detector."""

    alert_id: int
    kind: str
    state: Literal["open", "updated", "closed"]
    building_id: int | None = None
    group_id: int | None = None
    meter_id: int | None = None
    opened_at: datetime
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)


class CommandRequest(Message):
    """api -> ingest: run a command on a module behind a concentrator."""

    command_id: str
    module_serial: int
    action: Literal["valve_close", "valve_open", "relay_off", "relay_on", "ping"]
    input: int = Field(0, ge=0, le=5)
    timeout_s: float = Field(10.0, gt=0, le=120)


class CommandReply(Message):
    """ingest -> api: the concentrator's COMMAND_RESULT, or why there is none."""

    command_id: str
    status: Literal["done", "failed", "offline", "timeout"]
    detail: str = ""


class InvoiceIssued(Message):
    invoice_id: int
    account_id: int
    period_start: datetime
    period_end: datetime
    total_mdl: str  # Decimal as text: money is never a float
