"""The billing service's NATS edges.

- ``balans.events.period.<building>`` (JetStream, durable and queue ``billing-period``): a period
  closed, issue its invoices.
- ``balans.events.allocation.<building>`` (JetStream, durable and queue ``billing-allocation``):
  heat of hours that were already invoiced changed, so re-bill those periods; the run
  writes corrections only where an account's lines changed.
- ``balans.billing.api`` (core request/reply, queue ``billing``): BillingRequest.

Every written invoice or correction is announced as InvoiceIssued on
``balans.billing.invoice.<account>``, captured by the INVOICES stream (message id = invoice
id) so integrators read them durably.
"""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from balans_billing.invoice_stream import INVOICES_STREAM, invoice_msg_id
from balans_billing.invoicing import REFUSALS, Issued, bill_building
from balans_billing.metrics import ANNOUNCE_FAILURES, INVALID_MESSAGES, ISSUED, RUN_SECONDS, RUNS
from balans_protocol import subjects
from balans_protocol.messages import (
    AllocationComputed,
    BillingReply,
    BillingRequest,
    InvoiceIssued,
    PeriodClosed,
)

log = structlog.get_logger("billing")

NAK_DELAY_S = 30.0


class BillingRun:
    """Bills a building's period and announces what was written."""

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool) -> None:
        self.js = js
        self.pool = pool

    async def run(
        self, trigger: str, building_id: int, start: datetime, end: datetime
    ) -> list[Issued]:
        """Bill one period; REFUSALS and other errors are counted, logged and raised."""
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
            await self.announce(item)
        log.info("billed", written=len(issued), **context)
        return issued

    async def announce(self, item: Issued) -> None:
        """Publish InvoiceIssued to the INVOICES stream; a failure is counted, logged, raised."""
        message = InvoiceIssued(
            invoice_id=item.invoice_id,
            account_id=item.account_id,
            period_start=item.period_start,
            period_end=item.period_end,
            total_mdl=str(item.total),
            kind=item.kind,
            corrects_id=item.corrects_id,
        )
        try:
            await self.js.publish(
                subjects.invoice(item.account_id),
                message.model_dump_json().encode(),
                stream=INVOICES_STREAM,
                headers={"Nats-Msg-Id": invoice_msg_id(item.invoice_id)},
            )
        except Exception as exc:
            ANNOUNCE_FAILURES.inc()
            log.exception("invoice announcement failed", invoice_id=item.invoice_id, error=str(exc))
            raise


async def on_period_closed(msg: Msg, billing: BillingRun) -> None:
    """Issue the period's invoices; ack, or term when the data can never be billed."""
    try:
        event = PeriodClosed.model_validate_json(msg.data)
    except ValidationError as exc:
        INVALID_MESSAGES.labels("period_closed").inc()
        log.warning("invalid period event", error=str(exc), subject=msg.subject)
        await msg.term()
        return
    await _settle(
        msg, billing, "period_closed", event.building_id, event.period_start, event.period_end
    )


async def on_allocation(msg: Msg, billing: BillingRun) -> None:
    """Re-bill every invoiced period that the recomputed hours touch."""
    try:
        event = AllocationComputed.model_validate_json(msg.data)
    except ValidationError as exc:
        INVALID_MESSAGES.labels("allocation").inc()
        log.warning("invalid allocation event", error=str(exc), subject=msg.subject)
        await msg.term()
        return
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
        await msg.nak(delay=NAK_DELAY_S)
        return
    for period in periods:
        try:
            await billing.run(
                "allocation", event.building_id, period["period_start"], period["period_end"]
            )
        except REFUSALS:
            continue  # counted and logged by the run; other periods still get corrected
        except Exception:
            await msg.nak(delay=NAK_DELAY_S)
            return
    await msg.ack()


async def _settle(
    msg: Msg, billing: BillingRun, trigger: str, building_id: int, start: datetime, end: datetime
) -> None:
    try:
        await billing.run(trigger, building_id, start, end)
    except REFUSALS:
        await msg.term()  # counted and logged; an operator fixes the tariff and re-issues
        return
    except Exception:
        await msg.nak(delay=NAK_DELAY_S)
        return
    await msg.ack()


async def serve_requests(nc: Client, billing: BillingRun) -> Subscription:
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

    return await nc.subscribe(subjects.BILLING_API, queue="billing", cb=on_request)


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


async def subscribe_events(js: JetStreamContext, billing: BillingRun) -> list[Subscription]:
    """Durable push consumers on period and allocation events; each consumer's name is also
    its deliver group, so several billing processes share the work."""

    async def period_cb(msg: Msg) -> None:
        await on_period_closed(msg, billing)

    async def allocation_cb(msg: Msg) -> None:
        await on_allocation(msg, billing)

    return [
        await js.subscribe(
            subjects.PERIOD_CLOSED_ALL,
            queue="billing-period",
            cb=period_cb,
            manual_ack=True,
            stream=subjects.EVENTS_STREAM,
        ),
        await js.subscribe(
            subjects.ALLOCATION_ALL,
            queue="billing-allocation",
            cb=allocation_cb,
            manual_ack=True,
            stream=subjects.EVENTS_STREAM,
        ),
    ]
