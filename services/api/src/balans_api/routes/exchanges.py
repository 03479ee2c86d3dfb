"""``/provisioning/meter-exchanges``: record that meter X was replaced by meter Y on a
module input at a time (operate scope, audited, one transaction).

The old meter's channel period ends at the swap with its final register, the new meter's
begins there with its start register (docs/provisioning.md, "Meter exchange"); the new
meter is created in the same request or exists already. The record announces
TopologyChanged (balance puts the new meter in its groups) and, through the api's outbox,
``ReadingsStored`` from the hour of the swap, so allocation recomputes the building's
hours from there: a record entered days late rewrites exactly the affected hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from balans_api import audit
from balans_api.deps import Operator, Staff
from balans_api.errors import ERROR_RESPONSES, ApiError
from balans_api.metrics import PROVISIONING_REFUSALS
from balans_api.paging import Cursor, Limit, Page, after_time, time_page
from balans_api.provisioning import OUTBOX, wake_relay
from balans_core.outbox import enqueue
from balans_db.exchanges import (
    Exchange,
    ExchangeRefusedError,
    NewMeter,
    Recorded,
    exchanges_of_building,
    record_exchange,
)
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored, TopologyChanged

router = APIRouter(prefix="/provisioning", tags=["provisioning"], responses=ERROR_RESPONSES)


class NewMeterBody(BaseModel):
    """The new meter, created with the exchange in the old one's place (building, flat or
    riser, role, utility, unit, pipe); the fields left out are the old meter's."""

    model_config = ConfigDict(extra="forbid")

    serial: str = Field(min_length=1, examples=["heat-100002-0-b"])
    pulse_weight: Decimal | None = Field(
        None, gt=0, max_digits=12, decimal_places=6, examples=["0.001"]
    )
    kind: str | None = Field(None, examples=["flow_meter"])
    accuracy_class: str | None = Field(None, examples=["2"])
    verified_on: date | None = Field(None, examples=["2026-11-20"])


class MeterExchangeBody(BaseModel):
    """Meter ``old_meter`` was taken off module ``module`` input ``input`` at ``at`` with
    its register reading ``final_register``; ``new_meter`` (a serial, or the meter to
    create) was put on with its register reading ``start_register``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "module": 100002,
                    "input": 0,
                    "at": "2026-11-14T09:37:00+02:00",
                    "old_meter": "heat-100002-0",
                    "final_register": "1234.567",
                    "new_meter": {"serial": "heat-100002-0-b", "pulse_weight": "0.001"},
                    "start_register": "0.012",
                    "counter_reset": False,
                }
            ]
        },
    )

    module: int = Field(description="the radio module's serial")
    input: int = Field(ge=0, le=5, description="the module's pulse input, 0 to 5")
    at: datetime = Field(description="when the meters were swapped (with its time zone)")
    old_meter: str = Field(min_length=1, description="serial of the meter taken off")
    final_register: Decimal = Field(ge=0, description="the old meter's register at the swap")
    new_meter: str | NewMeterBody = Field(
        description="serial of an existing meter without a channel, or the meter to create"
    )
    start_register: Decimal = Field(ge=0, description="the new meter's register at the swap")
    counter_reset: bool = Field(
        False,
        description="the module's pulse counter was reset to 0 at the swap (otherwise it "
        "runs on from the old meter's count)",
    )
    module_count: int | None = Field(
        None, ge=0, description="the module's count at the swap, if read off the module"
    )


class MeterExchangeRecorded(BaseModel):
    building: str
    old_meter: str
    new_meter: str
    new_meter_created: bool
    at: datetime
    old_count_at_end: int = Field(description="the module count the final register stands for")
    new_count_at_start: int = Field(description="the module count the new meter starts from")
    new_register_offset: Decimal = Field(
        description="the new meter's register = offset + count × pulse weight"
    )
    recompute_from: datetime = Field(description="allocation recomputes the building from here")


class ExchangeMarker(BaseModel):
    at: datetime
    utility: str
    old_meter: str | None
    new_meter: str
    flat: str | None
    riser: int | None


def _refused(problems: list[tuple[str, str]]) -> ApiError:
    PROVISIONING_REFUSALS.labels("meter_exchange").inc()
    return ApiError(
        422,
        f"refused: {len(problems)} problem(s) in the meter exchange",
        details=[{"path": path, "message": message} for path, message in problems],
    )


def _exchange(body: MeterExchangeBody) -> Exchange:
    new = body.new_meter
    return Exchange(
        module=body.module,
        input=body.input,
        at=body.at.astimezone(UTC),
        old_serial=body.old_meter,
        new_serial=new if isinstance(new, str) else new.serial,
        final_register=body.final_register,
        start_register=body.start_register,
        counter_reset=body.counter_reset,
        module_count=body.module_count,
        create=None
        if isinstance(new, str)
        else NewMeter(new.serial, new.pulse_weight, new.kind, new.accuracy_class, new.verified_on),
    )


@router.post(
    "/meter-exchanges",
    response_model=MeterExchangeRecorded,
    status_code=status.HTTP_201_CREATED,
)
async def record_meter_exchange(
    request: Request, body: MeterExchangeBody, principal: Operator
) -> MeterExchangeRecorded:
    """Record a meter exchange: consumption runs on across it (no spike, no negative
    hour, nothing lost), whether the module's counter ran on or was reset and whatever the
    two pulse weights. 422 names every problem (an unknown meter, another input, a final
    register below the old meter's last reading, a swap in the future...)."""
    if body.at.tzinfo is None:
        raise _refused([("at", "give the time with its time zone")])
    if body.at.astimezone(UTC) > datetime.now(UTC) + timedelta(minutes=5):
        raise _refused([("at", "an exchange cannot be recorded before it happened")])
    exchange = _exchange(body)
    async with request.app.state.pool.acquire() as conn, conn.transaction():
        try:
            recorded = await record_exchange(conn, exchange)
        except ExchangeRefusedError as exc:
            raise _refused(exc.problems) from exc
        await audit.record(
            conn, principal.actor, "meter.exchange", f"meter:{exchange.old_serial}",
            new_meter=exchange.new_serial, at=exchange.at.isoformat(),
            final_register=str(exchange.final_register),
            start_register=str(exchange.start_register), counter_reset=exchange.counter_reset,
        )  # fmt: skip
        recompute_from = await _announce(conn, recorded, exchange)
    wake_relay(request.app)
    return MeterExchangeRecorded(
        building=recorded.building_code,
        old_meter=exchange.old_serial,
        new_meter=exchange.new_serial,
        new_meter_created=recorded.created,
        at=exchange.at,
        old_count_at_end=recorded.counts.old_count_at_end,
        new_count_at_start=recorded.counts.new_count_at_start,
        new_register_offset=recorded.counts.new_register_offset,
        recompute_from=recompute_from,
    )


async def _announce(conn: asyncpg.Connection, recorded: Recorded, exchange: Exchange) -> datetime:
    """TopologyChanged (a meter created, two channels changed) and ReadingsStored from
    the hour of the swap, in the transaction of the record."""
    changes = {"channels": {"create": 1, "update": 1, "delete": 0}}
    if recorded.created:
        changes["meters"] = {"create": 1, "update": 0, "delete": 0}
    building = recorded.building_id
    await enqueue(
        conn,
        OUTBOX,
        subjects.topology_changed(building),
        TopologyChanged(
            building_id=building, building_code=recorded.building_code, changes=changes
        ),
    )
    hour = exchange.at.replace(minute=0, second=0, microsecond=0)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await enqueue(
        conn,
        OUTBOX,
        subjects.readings_stored(building),
        ReadingsStored(building_id=building, hour_from=hour, hour_to=max(hour, now), rows=0),
    )
    return hour


@router.get("/buildings/{code}/meter-exchanges", response_model=Page[ExchangeMarker])
async def list_meter_exchanges(
    code: str, request: Request, _: Staff, cursor: Cursor = None, limit: Limit = 100
) -> Page[ExchangeMarker]:
    """The building's meter exchanges, oldest first."""
    since = after_time(cursor, datetime(1970, 1, 1, tzinfo=UTC))
    rows = await exchanges_of_building(request.app.state.pool, code, since, limit + 1)
    if rows is None:
        raise ApiError(404, f"no building {code!r}")
    page, nxt = time_page(rows, limit, "at")
    return Page(items=[ExchangeMarker(**dict(r)) for r in page], next_cursor=nxt)
