"""What the api announces after entering readings or account periods, through its outbox:
register readings (a move-out read, historical readings from CSV), stored through the
concentrators' idempotent path (:mod:`balans_db.provisioning.readings`), as
``ReadingsStored``, so allocation computes those hours as for a concentrator's upload; an
account period changed where invoices were issued already, as ``PeriodClosed`` for each
such period, so billing issues the corrections (billing is idempotent)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from balans_api.provisioning import OUTBOX
from balans_core.outbox import enqueue
from balans_db.provisioning.readings import ReadingsReport
from balans_db.queries import billing
from balans_protocol import subjects
from balans_protocol.messages import PeriodClosed, ReadingsStored


async def announce_readings(conn: asyncpg.Connection, report: ReadingsReport) -> None:
    """ReadingsStored per building whose readings were new; call in the transaction that
    stored them (nothing is announced when every reading was stored before)."""
    if report.inserted == 0:
        return
    for building_id, (first, last) in sorted(report.hours.items()):
        message = ReadingsStored(
            building_id=building_id, hour_from=first, hour_to=last, rows=report.inserted
        )
        await enqueue(conn, OUTBOX, subjects.readings_stored(building_id), message)


async def announce_rebilling(conn: asyncpg.Connection, building_id: int, since: datetime) -> int:
    """PeriodClosed for every invoiced period of the building ending after ``since`` (an
    account period changed from then on); returns how many. Call in the change's
    transaction. Each message id is new: the closer's own id for the period may still be in
    the stream's duplicate window."""
    periods = await billing.invoiced_periods(conn, building_id, since)
    for p in periods:
        message = PeriodClosed(
            building_id=building_id, period_start=p["period_start"], period_end=p["period_end"]
        )
        await enqueue(
            conn,
            OUTBOX,
            subjects.period_closed(building_id),
            message,
            msg_id=f"period-rebill-{building_id}-{p['period_start']:%Y%m%d}-{uuid.uuid4().hex}",
        )
    return len(periods)
