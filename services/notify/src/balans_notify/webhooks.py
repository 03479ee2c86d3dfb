"""Integrators' webhooks: queue each event for every subscription that asked for it, then
deliver the queued ones, signed, retried with backoff until delivered or dead.

The consumers only write ``webhook_deliveries`` rows (one per subscription and event: a
redelivered announcement queues nothing new) and acknowledge. The deliverer takes due rows
one at a time (``for update skip locked``: several loops and processes share the work), POSTs
the event and records the answer: 2xx delivered; anything else, a timeout or a refused
connection waits ``BALANS_NOTIFY_WEBHOOK_BACKOFF_S`` doubled per attempt, and after
``BALANS_NOTIFY_WEBHOOK_ATTEMPTS`` the delivery is ``dead`` (the api lists them). Pending
deliveries survive restarts: they are rows, not timers.

``readings.stored`` is coalesced: stored readings are announced per upload batch, thousands
a minute in a large city, so a building's announcements within one window of
``BALANS_NOTIFY_READINGS_WEBHOOK_WINDOW_S`` (aligned to the epoch) merge into one delivery
due at the window's end (the hours stored widen, the rows add up)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import structlog

from balans_db.queries import api
from balans_notify import metrics
from balans_notify.settings import NotifySettings
from balans_notify.signature import HEADER, sign
from balans_protocol.messages import AlertMessage, InvoiceIssued, ReadingsStored

log = structlog.get_logger("notify")

ALERT_EVENTS = {"open": "alert.opened", "closed": "alert.resolved"}
"""balance's alert states that are webhook events ("updated" is not one)."""

_QUEUE = """insert into webhook_deliveries (subscription_id, event_id, event, payload)
select unnest($1::int[]), $2, $3, $4::jsonb
on conflict (subscription_id, event_id) do nothing"""

READINGS_EVENT = "readings.stored"

# the window's delivery, or the announcement merged into it while it was not tried yet;
# returns the subscriptions whose row took it (a row being delivered right now does not)
_COALESCE = """insert into webhook_deliveries
  (subscription_id, event_id, event, payload, next_attempt_at)
select unnest($1::int[]), $2, 'readings.stored', $3::jsonb, $4
on conflict (subscription_id, event_id) do update set payload = jsonb_set(jsonb_set(jsonb_set(
    webhook_deliveries.payload,
    '{data,hour_from}', to_jsonb(least((webhook_deliveries.payload #>> '{data,hour_from}'),
                                       (excluded.payload #>> '{data,hour_from}')))),
    '{data,hour_to}', to_jsonb(greatest((webhook_deliveries.payload #>> '{data,hour_to}'),
                                        (excluded.payload #>> '{data,hour_to}')))),
    '{data,rows}', to_jsonb((webhook_deliveries.payload #>> '{data,rows}')::bigint
                            + (excluded.payload #>> '{data,rows}')::bigint))
where webhook_deliveries.state = 'pending' and webhook_deliveries.attempts = 0
returning subscription_id"""

_DUE = """select id, subscription_id, event, payload::text as body, attempts
from webhook_deliveries where state = 'pending' and next_attempt_at <= now()
order by next_attempt_at limit 1 for update skip locked"""

_DELIVERED = """update webhook_deliveries set state = 'delivered', attempts = attempts + 1,
last_status = $2, last_error = '', delivered_at = now() where id = $1"""

_FAILED = """update webhook_deliveries set state = $2, attempts = attempts + 1,
last_status = $3, last_error = $4, next_attempt_at = now() + $5::interval where id = $1"""


class WebhookQueue:
    """Turns announcements into queued deliveries."""

    def __init__(self, pool: asyncpg.Pool, readings_window_s: float) -> None:
        self.pool = pool
        self.readings_window_s = readings_window_s

    async def queue(self, event: str, event_id: str, data: dict[str, Any]) -> None:
        subscriptions = await api.webhook_subscriptions_for(self.pool, event)
        if not subscriptions:
            return
        payload = {
            "id": event_id,
            "type": event,
            "created_at": datetime.now(UTC).isoformat(),
            "data": data,
        }
        await self.pool.execute(
            _QUEUE, [s["id"] for s in subscriptions], event_id, event, json.dumps(payload)
        )
        metrics.WEBHOOKS_QUEUED.labels(event).inc(len(subscriptions))

    async def readings(self, stored: ReadingsStored) -> None:
        """Merge the announcement into its building's delivery of the current window (of
        the next one for a subscription whose delivery of this window is being sent)."""
        subscriptions = await api.webhook_subscriptions_for(self.pool, READINGS_EVENT)
        remaining = {s["id"] for s in subscriptions}
        window = self.readings_window_s
        start = datetime.fromtimestamp(time.time() // window * window, UTC)
        for _ in range(2):  # a window's delivery not tried yet is never being sent
            if not remaining:
                return
            end = start + timedelta(seconds=window)
            event_id = f"{READINGS_EVENT}.{stored.building_id}.{start:%Y%m%dT%H%M%SZ}"
            payload = {
                "id": event_id,
                "type": READINGS_EVENT,
                "created_at": datetime.now(UTC).isoformat(),
                "data": {
                    "building_id": stored.building_id,
                    "hour_from": stored.hour_from.astimezone(UTC).isoformat(),
                    "hour_to": stored.hour_to.astimezone(UTC).isoformat(),
                    "rows": stored.rows,
                    "window_start": start.isoformat(),
                    "window_end": end.isoformat(),
                },
            }
            took = await self.pool.fetch(
                _COALESCE, sorted(remaining), event_id, json.dumps(payload), end
            )
            remaining -= {row["subscription_id"] for row in took}
            metrics.WEBHOOKS_QUEUED.labels(READINGS_EVENT).inc(len(took))
            start = end

    async def invoice(self, issued: InvoiceIssued) -> None:
        await self.queue(
            "invoice.issued", f"invoice.issued.{issued.invoice_id}", issued.model_dump(mode="json")
        )

    async def alert(self, alert: AlertMessage) -> None:
        event = ALERT_EVENTS.get(alert.state)
        if event is not None:
            await self.queue(event, f"{event}.{alert.alert_id}", alert.model_dump(mode="json"))


class WebhookDeliverer:
    """Delivers due webhooks until stopped; ``loops`` deliveries run at the same time."""

    def __init__(
        self, pool: asyncpg.Pool, client: httpx.AsyncClient, settings: NotifySettings
    ) -> None:
        self.pool = pool
        self.client = client
        self.settings = settings

    def backoff(self, attempts: int) -> timedelta:
        s = self.settings
        wait = min(
            s.notify_webhook_backoff_s * 2 ** max(attempts - 1, 0), s.notify_webhook_max_backoff_s
        )
        return timedelta(seconds=wait)

    async def _post(self, url: str, secret: str, event: str, delivery: int, body: bytes) -> int:
        headers = {
            "Content-Type": "application/json",
            "Balans-Event": event,
            "Balans-Delivery": str(delivery),
            HEADER: sign(secret, int(time.time()), body),
        }
        started = time.perf_counter()
        try:
            response = await self.client.post(url, content=body, headers=headers)
        finally:
            metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        return response.status_code

    async def deliver_one(self) -> bool:
        """Deliver the most overdue webhook; False when none is due."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_DUE)
            if row is None:
                return False
            subscription = await api.webhook_subscription(conn, row["subscription_id"])
            status: int | None = None
            if subscription is None or not subscription["active"]:
                error = "the subscription is disabled"
            else:
                try:
                    status = await self._post(
                        subscription["url"],
                        subscription["secret"],
                        row["event"],
                        row["id"],
                        row["body"].encode(),
                    )
                    error = "" if 200 <= status < 300 else f"answered {status}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
            if not error:
                await conn.execute(_DELIVERED, row["id"], status)
                metrics.WEBHOOK_ATTEMPTS.labels("delivered").inc()
                return True
            attempts = row["attempts"] + 1
            dead = attempts >= self.settings.notify_webhook_attempts
            await conn.execute(
                _FAILED,
                row["id"],
                "dead" if dead else "pending",
                status,
                error[:500],
                self.backoff(attempts),
            )
            metrics.WEBHOOK_ATTEMPTS.labels("dead" if dead else "failed").inc()
            log.warning(
                "webhook not delivered",
                delivery=row["id"],
                webhook=row["event"],
                attempts=attempts,
                dead=dead,
                error=error,
            )
            return True

    async def _loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                busy = await self.deliver_one()
            except Exception as exc:  # the database away: logged, counted, tried again
                metrics.DELIVERER_ERRORS.inc()
                log.error("webhook deliverer failed", error=repr(exc))
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), self.settings.notify_webhook_poll_s)

    async def run(self, stopping: asyncio.Event, loops: int = 4) -> None:
        await asyncio.gather(*(self._loop(stopping) for _ in range(loops)))
