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


class TopologyChanged(Message):
    """A building's topology changed (provisioning route or import); balance brings the
    building's balance groups in line with it."""

    building_id: int
    building_code: str
    changes: dict[str, dict[str, int]] = Field(
        default_factory=dict, description='entity -> {"create": n, "update": n, "delete": n}'
    )


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
    # when the fault began (True: before the data balance read), and the one reason that
    # fired as a code and its figures, for a reader's language (docs/balance.md)
    first_hour: datetime | None = None
    began_before: bool = False
    reason_code: str | None = None
    reason_params: dict[str, Any] = Field(default_factory=dict)
    # the last hour the fault was seen, and how a closed alert ended: null when the detector
    # saw it end (or it is still open), ``resolved`` when an operator closed it as fixed,
    # ``dismissed`` when an operator closed it as a false alarm (allocation then restores
    # the measured figures of a faulty_sensor alert's hours, docs/allocation.md)
    last_hour: datetime | None = None
    resolution: Literal["resolved", "dismissed"] | None = None


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


class CommandFinished(Message):
    """api -> anyone: a command to a meter's module ended (the outcome stored on its
    ``commands`` row), announced through the api's outbox on
    ``subjects.command_finished(meter_id)``."""

    command_id: str
    meter_id: int
    action: Literal["valve_close", "valve_open", "relay_off", "relay_on", "ping"]
    status: Literal["done", "failed", "offline", "timeout"]
    requested_at: datetime
    finished_at: datetime


class InvoiceIssued(Message):
    """billing -> anyone: an invoice, or a correction of one after late data, was issued."""

    invoice_id: int
    account_id: int
    period_start: datetime
    period_end: datetime
    total_mdl: str  # Decimal as text: money is never a float
    kind: Literal["invoice", "correction"] = "invoice"
    corrects_id: int | None = None


class BillingRequest(Message):
    """Request on subjects.BILLING_API: issue (or correct) a building's invoices for
    [period_start, period_end), whole months in the building's time zone."""

    building_id: int
    period_start: datetime
    period_end: datetime


class BillingReply(Message):
    """What a BillingRequest wrote: ids of new invoices and corrections, or why none."""

    status: Literal["done", "failed"]
    invoice_ids: list[int] = Field(default_factory=list)
    correction_ids: list[int] = Field(default_factory=list)
    detail: str = ""


class InvoiceDocumentRequest(Message):
    """Request on subjects.BILLING_DOCUMENT: one invoice's printable document."""

    invoice_id: int = Field(ge=1, le=2**31 - 1)
    format: Literal["html", "pdf"]
    locale: Literal["ro", "ru", "en"]


class InvoiceDocumentReply(Message):
    """The document (base64, an A4 PDF is tens of kB: well under NATS's 1 MB), or why not:
    ``not_found`` when there is no such invoice."""

    status: Literal["done", "not_found", "failed"]
    media_type: str = ""
    content_b64: str = ""
    detail: str = ""


class TariffVersionRequest(Message):
    """Request on subjects.BILLING_TARIFF: a new version of a utility's tariff (the tariff
    document billing validates, docs/billing.md), in force from its ``effective_from``;
    the version open on that day ends there."""

    spec: dict[str, Any]
    actor: str = Field(min_length=1, max_length=200)


class TariffVersionReply(Message):
    """``invalid``: the document's problems (path and message, nothing stored);
    ``conflict``: its dates overlap a stored version that does not end open before it."""

    status: Literal["done", "invalid", "conflict", "failed"]
    tariff_id: int | None = None
    version: int | None = None
    problems: list[dict[str, str]] = Field(default_factory=list)
    detail: str = ""


# --- operators' alert actions: request/reply on subjects.BALANCE_ALERTS_API ---
class AlertAction(Message):
    """api -> balance: an operator acknowledges an alert (it stays open), resolves it (it
    closes, and the closing is announced like any other transition) or dismisses it as a
    false alarm (it closes too, announced with ``resolution="dismissed"``)."""

    alert_id: int = Field(ge=1, le=2**63 - 1)  # alerts.id is a bigint
    action: Literal["acknowledge", "resolve", "dismiss"]
    actor: str = Field(min_length=1, max_length=200)


class AlertActionReply(Message):
    """balance's answer to an AlertAction: ``found`` is false when there is no such alert."""

    ok: bool
    found: bool = True
    error: str = ""


# --- balance group editing: request/reply on subjects.BALANCE_GROUPS_API ---
GroupKind = Literal["branch", "building", "entrance", "riser", "custom"]


class BalanceGroupInfo(Message):
    """One balance group as the service API shows it."""

    id: int
    name: str
    utility: str
    kind: GroupKind
    building_id: int | None
    parent_id: int | None
    balance_meter_id: int | None
    member_meter_ids: list[int] = Field(default_factory=list)


class GroupList(Message):
    op: Literal["list"] = "list"
    building_id: int | None = None
    utility: str | None = None


class GroupGet(Message):
    op: Literal["get"] = "get"
    group_id: int


class GroupCreate(Message):
    op: Literal["create"] = "create"
    name: str = Field(min_length=1, max_length=200)
    utility: str
    kind: GroupKind = "custom"
    building_id: int | None = None
    parent_id: int | None = None
    balance_meter_id: int | None = None
    member_meter_ids: list[int] = Field(default_factory=list)


class GroupRename(Message):
    op: Literal["rename"] = "rename"
    group_id: int
    name: str = Field(min_length=1, max_length=200)


class GroupMembers(Message):
    """Add or remove subscriber meters of a group."""

    op: Literal["add_members", "remove_members"]
    group_id: int
    meter_ids: list[int] = Field(min_length=1)


class GroupDelete(Message):
    op: Literal["delete"] = "delete"
    group_id: int


class GroupGenerate(Message):
    """(Re)create the default groups of a building from its layout (existing ones kept)."""

    op: Literal["generate"] = "generate"
    building_id: int


class GroupRequest(BaseModel):
    """Envelope of every group-editing request: ``{"request": {"op": ..., ...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    request: (
        GroupList
        | GroupGet
        | GroupCreate
        | GroupRename
        | GroupMembers
        | GroupDelete
        | GroupGenerate
    ) = Field(discriminator="op")


class GroupReply(Message):
    """Answer to a GroupRequest: the groups touched (or listed), or why it failed."""

    ok: bool
    error: str = ""
    groups: list[BalanceGroupInfo] = Field(default_factory=list)
