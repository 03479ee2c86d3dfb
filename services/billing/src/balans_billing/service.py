"""The billing service's NATS edges.

- ``balans.events.period.<building>`` (JetStream, durable ``BALANS_BILLING_PERIOD_CONSUMER``):
  a period closed, issue its invoices.
- ``balans.events.allocation.<building>`` (JetStream, durable
  ``BALANS_BILLING_ALLOCATION_CONSUMER``): heat of hours that were already invoiced changed,
  so re-bill those periods; the run writes corrections only where an account's lines changed.
- ``balans.billing.api`` (core request/reply, queue ``BALANS_BILLING_API_QUEUE``):
  BillingRequest.

Every written invoice or correction is announced as InvoiceIssued on
``balans.billing.invoice.<account>``, captured by the INVOICES stream (message id = invoice
id) so integrators read them durably: the announcement is written to billing's outbox with
the invoice (``storage.insert_invoice``) and sent by the relay until JetStream has it.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from balans_billing.invoicing import REFUSALS, Issued, bill_building
from balans_billing.metrics import INVALID_MESSAGES, ISSUED, RUN_SECONDS, RUNS
from balans_billing.settings import BillingSettings
from balans_core.consumer import ConsumerSpec, JetStreamConsumer, PermanentError
from balans_core.outbox import OutboxRelay
from balans_protocol import subjects
from balans_protocol.messages import (
    AllocationComputed,
    BillingReply,
    BillingRequest,
    PeriodClosed,
)

log = structlog.get_logger("billing")

NAK_DELAY_S = 30.0


class BillingRun:
    """Bills a building's period; its announcements go out through the outbox relay."""

    def __init__(self, pool: asyncpg.Pool, relay: OutboxRelay) -> None:
        self.pool = pool
        self.relay = relay

    async def run(
        self, trigger: str, building_id: int, start: datetime, end: datetime
    ) -> list[Issued]:
        """Bill one period; REFUSALS and other errors are counted, logged and raised. Each
        invoice written is announced by the outbox row written with it."""
        started = time.perf_counter()
        context = {
            "trigger": trigger,
            "building_id": building_id,
            "period_start": start.isoformat(),
        }
        try:
            async with self.pool.acquire() as conn:
                issued = await bill_building(conn, building_id, start, end)
        except REFUSALS as exc:
            RUNS.labels(trigger, "rejected").inc()
            log.error("billing refused", error=str(exc), **context)
            raise
        except Exception as exc:
            RUNS.labels(trigger, "error").inc()
            log.exception("billing failed", error=str(exc), **context)
            raise
        RUN_SECONDS.observe(time.perf_counter() - started)
        RUNS.labels(trigger, "ok").inc()
        for item in issued:
            ISSUED.labels(item.kind).inc()
        if issued:
            self.relay.wake()
        log.info("billed", written=len(issued), **context)
        return issued


async def on_period_closed(event: PeriodClosed, billing: BillingRun) -> None:
    """Issue the period's invoices; a refused period (no tariff...) can never be billed as it
    is, so it is dead-lettered at once: an operator fixes the cause and replays it."""
    try:
        await billing.run("period_closed", event.building_id, event.period_start, event.period_end)
    except REFUSALS as exc:
        raise PermanentError(str(exc)) from exc


async def on_allocation(event: AllocationComputed, billing: BillingRun) -> None:
    """Re-bill every invoiced period that the recomputed hours touch; a refused period is
    skipped (counted and logged by the run), any other failure fails the event."""
    try:
        async with billing.pool.acquire() as conn:
            periods = await conn.fetch(
                """select distinct period_start, period_end from invoices
                   where building_id = $1 and kind = 'invoice'
                     and period_start <= $3 and period_end > $2
                   order by period_start""",
                event.building_id,
                event.hour_from,
                event.hour_to,
            )
    except Exception as exc:
        RUNS.labels("allocation", "error").inc()
        log.exception(
            "invoiced periods lookup failed", building_id=event.building_id, error=str(exc)
        )
        raise
    for period in periods:
        with contextlib.suppress(REFUSALS):  # other periods still get corrected
            await billing.run(
                "allocation", event.building_id, period["period_start"], period["period_end"]
            )


async def serve_requests(nc: Client, billing: BillingRun, queue: str) -> Subscription:
    """Answer BillingRequests on ``balans.billing.api`` (queue group: scale out freely)."""

    async def on_request(msg: Msg) -> None:
        try:
            request = BillingRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            INVALID_MESSAGES.labels("request").inc()
            log.warning("invalid billing request", error=str(exc))
            reply = BillingReply(
                status="failed", detail=f"invalid request: {exc.error_count()} error(s)"
            )
        else:
            reply = await _answer(billing, request)
        await msg.respond(reply.model_dump_json().encode())

    return await nc.subscribe(subjects.BILLING_API, queue=queue, cb=on_request)


async def _answer(billing: BillingRun, request: BillingRequest) -> BillingReply:
    try:
        issued = await billing.run(
            "request", request.building_id, request.period_start, request.period_end
        )
    except REFUSALS as exc:
        return BillingReply(status="failed", detail=str(exc))
    except Exception:
        return BillingReply(status="failed", detail="internal error (logged)")
    return BillingReply(
        status="done",
        invoice_ids=[i.invoice_id for i in issued if i.kind == "invoice"],
        correction_ids=[i.invoice_id for i in issued if i.kind == "correction"],
    )


def event_consumers(
    js: JetStreamContext, billing: BillingRun, settings: BillingSettings
) -> list[JetStreamConsumer[Any]]:
    """Durable consumers on period and allocation events, shared by every billing process."""

    def spec(subject: str, durable: str) -> ConsumerSpec:
        return ConsumerSpec(
            service="billing",
            stream=subjects.EVENTS_STREAM,
            subject=subject,
            durable=durable,
            max_ack_pending=4,
            ack_wait_s=300.0,
            max_deliveries=settings.consumer_max_deliveries,
            nak_delay_s=NAK_DELAY_S,
            nak_max_delay_s=10 * NAK_DELAY_S,
        )

    async def period_closed(event: PeriodClosed) -> None:
        await on_period_closed(event, billing)

    async def allocation(event: AllocationComputed) -> None:
        await on_allocation(event, billing)

    return [
        JetStreamConsumer.each(
            js,
            spec(subjects.PERIOD_CLOSED_ALL, settings.billing_period_consumer),
            PeriodClosed,
            period_closed,
        ),
        JetStreamConsumer.each(
            js,
            spec(subjects.ALLOCATION_ALL, settings.billing_allocation_consumer),
            AllocationComputed,
            allocation,
        ),
    ]
