"""Response and request models of the REST API (``XPublic`` for what is returned)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from balans_api.password_policy import MAX_LENGTH, MIN_LENGTH


class Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class SitePublic(Public):
    id: int
    code: str
    name: str
    address: str
    latitude: float
    longitude: float
    timezone: str


class BuildingPublic(Public):
    id: int
    site_id: int
    code: str
    name: str
    address: str
    floors: int
    layout: str
    methodology: dict[str, Any]
    timezone: str = Field(
        description="The site's IANA time zone: the building's hours, days and months are its."
    )


class EntrancePublic(Public):
    id: int
    building_id: int
    number: int


class RiserPublic(Public):
    id: int
    building_id: int
    entrance_id: int
    number: int


class FlatPublic(Public):
    id: int
    building_id: int
    entrance_id: int
    number: str
    floor: int
    rooms: int
    area_m2: Decimal
    vacant: bool = Field(
        description="No account holds the flat today (local day of its site): its days are "
        "billed to the building's owner account under the vacant-flat rule (docs/billing.md)."
    )


class AccountPublic(Public):
    id: int
    number: str
    holder_name: str
    flat_id: int | None = Field(description="null for the building's owner account")
    building_id: int | None = Field(description="the building of an owner account, else null")
    residents: int
    email: str | None
    opened_on: date | None = Field(description="first day held; null = since metering began")
    closed_on: date | None = Field(description="the move-out day (not held any more); null = open")


class MeterPublic(Public):
    id: int
    serial: str
    utility: str
    kind: str
    role: str
    building_id: int
    flat_id: int | None
    riser_id: int | None
    pulse_weight: Decimal
    unit: str
    pipe: str | None
    has_valve: bool
    valve_state: Literal["open", "closed"] | None = Field(
        None, description="As the last valve command done left it; null without a valve."
    )
    module_serial: int | None = None
    input: int | None = None


T_FIELD = "ISO 8601 UTC with Z, e.g. 2026-12-03T00:00:00Z"


class RegisterPoint(BaseModel):
    t: datetime = Field(description=f"When the register was read ({T_FIELD}).")
    count: int = Field(description="Cumulative pulse count.")
    value: float = Field(
        description="count x pulse weight, in the meter's unit (to the weight's decimals)."
    )


class SeriesAxis(BaseModel):
    """The time axis every series carries (columnar, one shape for all): bucket i begins
    at ``start`` + i x ``step``; each quantity is an array with one element per bucket."""

    resolution: Literal["hour", "day", "month"]
    time_zone: str = Field(
        description="The site's IANA time zone: days and months are its local calendar's."
    )
    start: datetime | None = Field(
        description=f"When the first bucket with data begins ({T_FIELD}); null when the "
        "series is empty. Hours: the start of the hour; days and months: local midnight."
    )
    step: Literal["PT1H", "P1D", "P1M"] = Field(
        description="The buckets' length (ISO 8601): an hour, or a local day (23 to 25 "
        "hours) or month of `time_zone`'s calendar."
    )
    partial: list[int] = Field(
        default_factory=list,
        description="Indices of the buckets that hold fewer hours than they span: cut by "
        "from/to, still running, or hours missing.",
    )


class Series(SeriesAxis):
    """A time series of one meter (or flat) in one unit (the shape of every series)."""

    meter_id: int | None = None
    flat_id: int | None = None
    unit: str
    values: list[float | None] = Field(
        description="One per bucket from `start` to the last bucket with data; null where a "
        "bucket has none. Rounded to the meter's resolution (the decimals of its pulse "
        "weight); allocated heat to 0.001 kWh."
    )
    estimated: list[int] = Field(
        default_factory=list, description="Indices of the buckets with estimated hours."
    )


class HeatHour(BaseModel):
    """One hour of a flat's allocated heat (kWh to 0.001)."""

    t: datetime = Field(description=f"Start of the hour ({T_FIELD}).")
    measured_kwh: float
    common_kwh: float
    total_kwh: float
    estimated: bool
    flags: int


class ModuleStatusPublic(BaseModel):
    serial: int
    concentrator_serial: int
    subnet: int
    building_id: int
    flat_id: int | None
    riser_id: int | None
    floor: int
    last_seen: datetime | None
    battery_mv: int | None
    rssi_dbm: int | None
    hops: int | None
    parent_serial: int | None
    tamper: bool | None
    error_bits: int | None


class ConcentratorPublic(BaseModel):
    id: int
    serial: int
    building_id: int
    model: str
    installed_on: date
    modules: int
    last_seen: datetime | None


class AlertPublic(BaseModel):
    """An alert as the queue lists it: where, what, when; no evidence (``GET /alerts/{id}``
    has it, drawn as series)."""

    id: int
    kind: str
    state: str
    severity: str
    building_id: int | None
    building_name: str | None
    group_id: int | None
    group_name: str | None
    meter_id: int | None
    meter_serial: str | None
    meter_has_valve: bool = Field(description="The meter has a valve an operator can close.")
    module_serial: int | None
    flat_id: int | None = Field(description="The flat of the meter or module, if any.")
    flat_number: str | None
    riser_id: int | None
    riser_number: int | None
    began_at: datetime = Field(description="When the fault began: the detector's first hour.")
    began_before: bool = Field(
        description="The fault was there at the first hour read: it began before began_at."
    )
    last_hour: datetime = Field(description="The last hour the fault was seen.")
    detected_at: datetime | None = Field(description="The hour the detector was sure.")
    opened_at: datetime = Field(description="When balance wrote the alert.")
    updated_at: datetime | None
    closed_at: datetime | None
    summary: str = Field(description="balance's one-line summary (English).")
    reason_code: str | None = Field(
        description="The one reason that fired, as `<kind>.<rule>` (docs/balance.md)."
    )
    reason_params: dict[str, Any] = Field(description="The figures the reason's sentence uses.")
    rule: str | None = Field(description="balance's rule, in its words (English).")
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None


class AlertNote(BaseModel):
    """What an operator writes with an acknowledge or resolve (kept in the audit log)."""

    note: str = Field("", max_length=2000, examples=["crew sent to riser 7"])


class BalanceGroupPublic(BaseModel):
    id: int
    name: str
    utility: str
    kind: str
    building_id: int | None
    parent_id: int | None
    balance_meter_id: int | None
    member_meter_ids: list[int]
    flats_served: int | None = Field(
        None, description="Flats the balance meter serves (None before balance's analysis)."
    )
    flats_metered: int | None = Field(None, description="Of them, flats its members meter.")
    coverage_complete: bool | None = Field(
        None,
        description="Enough flats metered for the imbalance to mean anything; False: shown "
        "as incomplete ('10 of 40 flats metered'), raises no imbalance alerts.",
    )
    loss_target_share: float | None = Field(
        None, description="Losses operators accept, as a share of the balance meter."
    )


class AlertSpan(BaseModel):
    """An alert of the group to draw over its chart: the fault from when it began to when it
    was last seen (still running while open)."""

    id: int
    kind: str
    state: str
    began: datetime = Field(description=f"When the fault began ({T_FIELD}).")
    until: datetime = Field(description=f"Last hour seen, or now while open ({T_FIELD}).")
    began_before: bool = Field(description="The fault is older than the data balance read.")
    reason_code: str | None


class GroupLosses(BaseModel):
    """The group's losses over the range in absolute terms, against the accepted target."""

    unit: str
    balance_value: float = Field(description="What the balance meter measured.")
    members_value: float = Field(description="The members' sum, in the same unit.")
    loss: float = Field(description="balance_value - members_value, in the unit.")
    loss_pct: float | None = Field(description="The loss as % of the group's balance meter.")
    loss_pct_of_building: float | None = Field(
        description="The loss as % of the building meter of the same utility."
    )
    expected_loss: float = Field(description="What balance expects (pipes, common areas).")
    target_pct: float | None = Field(description="Losses operators accept, % of the meter.")
    hours: int = Field(description="Hours of series the figures cover.")


IMBALANCE_VALUES = (
    "balance_value",
    "members_value",
    "expected_loss",
    "imbalance",
    "imbalance_pct",
    "band_low",
    "band_median",
    "band_high",
    "coverage",
)
"""The quantities of an imbalance series, one array each (:class:`ImbalanceSeries`)."""


class ImbalanceSeries(SeriesAxis):
    """balance's series of a group: what the balance meter measured against the members,
    judged against the band balance learned for the group. One array per quantity (null
    where a bucket has no point); a day or month whose hours balance has only in part
    (coverage < 1) is partial."""

    group_id: int
    unit: str | None = Field(description="The balance meter's unit; None without points.")
    balance_value: list[float | None] = Field(description="What the balance meter measured.")
    members_value: list[float | None] = Field(
        description="The members' sum, in the balance meter's unit (heat from volume and ΔT "
        "where the members are flow meters)."
    )
    expected_loss: list[float | None] = Field(
        description="What balance expected the difference to be (docs/balance.md)."
    )
    imbalance: list[float | None] = Field(description="The imbalance balance judged, in the unit.")
    imbalance_pct: list[float | None] = Field(description="Imbalance as % of the balance meter.")
    band_low: list[float | None] = Field(description="Lower edge of balance's learned band.")
    band_median: list[float | None] = Field(description="The band's centre (usual imbalance).")
    band_high: list[float | None] = Field(description="Upper edge of balance's learned band.")
    coverage: list[float | None] = Field(
        description="Hours: the share of the members that reported, 0..1. Days and months: "
        "the share of the bucket's hours balance has, 0..1."
    )
    night: list[int] = Field(
        description="Indices of night hours (the night-flow floor is learned from these)."
    )
    note: str | None = Field(
        None, description="Why there are no values (balance has no series for the range)."
    )
    alert_spans: list[AlertSpan] = Field(
        default_factory=list, description="The group's alerts overlapping the range."
    )
    losses: GroupLosses | None = Field(
        None, description="Losses over the range (None without hourly series in it)."
    )


class CommandCreate(BaseModel):
    action: Literal["valve_close", "valve_open", "relay_off", "relay_on", "ping"] = Field(
        examples=["valve_close"]
    )
    reason: str = Field("", max_length=500, examples=["non-payment since March"])


class CommandPublic(BaseModel):
    id: str
    meter_id: int
    module_serial: int
    concentrator_serial: int
    action: str
    status: str
    detail: str
    requested_by: str
    created_at: datetime
    updated_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class Me(BaseModel):
    actor: str
    role: str
    scopes: list[str]
    account_id: int | None
    flat_ids: list[int]
    building_ids: list[int]


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"At least {MIN_LENGTH} characters, not containing the username, not in "
        "the breached-password list.",
    )
    role: Literal["admin", "operator", "manager", "consumer"]
    account_id: int | None = None
    full_name: str = Field("", max_length=200)


class UserUpdate(BaseModel):
    """A user's role (a consumer with the account they may see) or name; what is left out
    stays as it is."""

    role: Literal["admin", "operator", "manager", "consumer"] | None = None
    account_id: int | None = Field(None, description="required when the role is consumer")
    full_name: str | None = Field(None, max_length=200)


class PasswordChange(BaseModel):
    current_password: str = Field(max_length=MAX_LENGTH)
    new_password: str = Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"At least {MIN_LENGTH} characters, not containing the username, not in "
        "the breached-password list.",
    )


class UserPublic(BaseModel):
    id: int
    username: str
    role: str
    account_id: int | None
    full_name: str
    active: bool
    created_at: datetime
    failed_logins: int = Field(description="Failed logins since the last good one.")
    login_delay_until: datetime | None = Field(
        description="Logins are refused until then (backoff after failed logins)."
    )


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100, examples=["billing-export"])
    scopes: list[Literal["read", "operate", "admin"]] = Field(min_length=1, examples=[["read"]])


class ApiKeyPublic(BaseModel):
    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    token: str = Field(description="The key itself; shown only once.")


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class TariffPublic(BaseModel):
    id: int
    utility: str
    supplier: str
    version: int
    effective_from: date
    effective_to: date | None
    spec: dict[str, Any] = Field(description="Blocks, fixed, capacity and operations charges.")


class InvoicePublic(BaseModel):
    id: int
    account_id: int
    building_id: int
    period_start: datetime
    period_end: datetime
    kind: Literal["invoice", "correction"]
    corrects_id: int | None
    currency: str
    total: Decimal = Field(description="Decimal amount (a JSON string), never a float.")
    issued_at: datetime
    number: str = Field(description="Gapless per issuer and year, e.g. 2026-000123.")
    due_on: date


class InvoiceLinePublic(BaseModel):
    line_no: int
    utility: str
    code: str
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal


class InvoiceDetail(InvoicePublic):
    lines: list[InvoiceLinePublic]
