"""The period closer: once allocation is complete past the end of a building's local
calendar month, announce that month as closed so the service bills it on its own.

A month is due when it ends at or before the building's allocation watermark
(``allocation_watermarks.complete_until``) *and* at least the lateness allowance
(``BALANS_PERIOD_CLOSE_LATENESS_HOURS``) before now: the watermark is data, and one reading
dated in the future once moved it a year ahead, so the clock has the last word. It must
also end after the building's first allocated hour
(months before metering began are never billed), overlaps no invoiced period, and has not
been announced before. Announcing = recording the month in ``billing_period_closures`` and
writing ``PeriodClosed`` to billing's outbox in that one transaction (message id
``period-closed-<building>-<start>``); the relay publishes it until JetStream acknowledges
it, so neither a failed publish nor a crash loses or repeats an announcement.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import structlog

from balans_billing.metrics import CLOSER_PASSES, PERIODS_CLOSED
from balans_billing.periods import month_bounds
from balans_billing.storage import OUTBOX
from balans_core import outbox
from balans_core.outbox import OutboxRelay
from balans_db.queries import allocation
from balans_protocol import subjects
from balans_protocol.messages import PeriodClosed

log = structlog.get_logger("billing.closer")


def months_ending_between(
    first_hour: datetime, until: datetime, timezone: str
) -> Iterator[tuple[datetime, datetime]]:
    """Local calendar months [start, end) with first_hour < end <= until, oldest first."""
    local = first_hour.astimezone(ZoneInfo(timezone))
    year, month = local.year, local.month
    while True:
        start, end = month_bounds(year, month, timezone)
        if end > until:
            return
        yield start, end
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def period_msg_id(event: PeriodClosed) -> str:
    """JetStream de-duplication id of one announcement."""
    return f"period-closed-{event.building_id}-{event.period_start.isoformat()}"


async def due_periods(conn: asyncpg.Connection, lateness: timedelta) -> list[PeriodClosed]:
    """Every month of every building that is complete, ended ``lateness`` ago, and neither
    invoiced nor announced."""
    ended_by = datetime.now(UTC) - lateness
    due: list[PeriodClosed] = []
    for row in await allocation.complete_buildings(conn):
        if row["first_hour"] is None:
            continue
        building_id = row["building_id"]
        taken = await conn.fetch(
            """select period_start, period_end from billing_period_closures
               where building_id = $1
               union
               select distinct period_start, period_end from invoices
               where building_id = $1 and kind = 'invoice'""",
            building_id,
        )
        for start, end in months_ending_between(
            row["first_hour"], min(row["complete_until"], ended_by), row["timezone"]
        ):
            if any(t["period_start"] < end and start < t["period_end"] for t in taken):
                continue
            due.append(PeriodClosed(building_id=building_id, period_start=start, period_end=end))
    return due


async def announce(conn: asyncpg.Connection, event: PeriodClosed) -> bool:
    """Record one closed period and its announcement; False when another closer got there
    first."""
    async with conn.transaction():
        recorded = await conn.fetchval(
            """insert into billing_period_closures (building_id, period_start, period_end)
               values ($1, $2, $3) on conflict do nothing returning true""",
            event.building_id,
            event.period_start,
            event.period_end,
        )
        if not recorded:
            return False
        await outbox.enqueue(
            conn,
            OUTBOX,
            subjects.period_closed(event.building_id),
            event,
            msg_id=period_msg_id(event),
        )
    return True


async def close_due_periods(pool: asyncpg.Pool, lateness: timedelta) -> list[PeriodClosed]:
    """One pass of the closer: announce every due period (through the outbox); return those
    announced."""
    announced: list[PeriodClosed] = []
    async with pool.acquire() as conn:
        for event in await due_periods(conn, lateness):
            if await announce(conn, event):
                PERIODS_CLOSED.inc()
                announced.append(event)
                log.info(
                    "period closed",
                    building_id=event.building_id,
                    period_start=event.period_start.isoformat(),
                    period_end=event.period_end.isoformat(),
                )
    return announced


async def run_closer(
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    interval_s: float,
    lateness: timedelta,
    stopping: asyncio.Event,
) -> None:
    """Pass after pass until ``stopping`` is set, waking the relay for what a pass announced;
    a failed pass is logged, counted and retried at the next interval."""
    while not stopping.is_set():
        try:
            if await close_due_periods(pool, lateness):
                relay.wake()
        except Exception as exc:
            CLOSER_PASSES.labels("error").inc()
            log.exception("period closer pass failed", error=str(exc))
        else:
            CLOSER_PASSES.labels("ok").inc()
        with contextlib.suppress(TimeoutError):  # the interval passed: next pass
            await asyncio.wait_for(stopping.wait(), interval_s)
