"""The transactional outbox: an announcement is a row written with the change it announces,
and a relay sends it until JetStream acknowledges it.

A service writes the message with :func:`enqueue` inside the transaction of its change, so
the announcement exists exactly when the change does (a crash after the commit loses
nothing). :class:`OutboxRelay` sends unsent rows in the order they were written, each with
``Nats-Msg-Id`` = the row's stable message id, and marks a row sent only after JetStream's
acknowledgement; a restart sends what was not sent. A row sent twice (the relay died
between the ack and the mark, or two relays raced) is stored once by the stream's duplicate
window.

Each service owns its own outbox table (declared in ``balans_db.tables``, same columns:
``id, msg_id, subject, payload, headers, created_at, sent_at``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import ClassVar

import asyncpg
import structlog
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext
from prometheus_client import Counter, Gauge
from pydantic import BaseModel

log = structlog.get_logger("outbox")

_TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*_outbox$")
SENT_KEPT_S = 7 * 24 * 3600.0  # sent rows stay this long, for inspection
PRUNE_EVERY_S = 3600.0


def _table(name: str) -> str:
    """The table name, checked (it is spliced into SQL)."""
    if not _TABLE_NAME.match(name):
        raise ValueError(f"not an outbox table name: {name!r}")
    return name


async def enqueue(
    conn: asyncpg.Connection,
    table: str,
    subject: str,
    message: BaseModel | bytes,
    *,
    msg_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """Write one announcement into ``table``; call inside the transaction of the change it
    announces. ``msg_id`` (default: a new UUID) is the JetStream de-duplication id, so pass
    a natural one where the same change could be written twice. Returns the message id."""
    (written,) = await enqueue_many(conn, table, [(subject, message)], msg_ids=[msg_id])
    return written


async def enqueue_many(
    conn: asyncpg.Connection,
    table: str,
    messages: Sequence[tuple[str, BaseModel | bytes]],
    *,
    msg_ids: Sequence[str | None] | None = None,
    headers: dict[str, str] | None = None,
) -> list[str]:
    """:func:`enqueue` for many (subject, message) pairs in one statement (one round trip
    however many; they are sent in this order). Returns the message ids."""
    if not messages:
        return []
    ids = [m or str(uuid.uuid4()) for m in (msg_ids or [None] * len(messages))]
    payloads = [m if isinstance(m, bytes) else m.model_dump_json().encode() for _, m in messages]
    await conn.execute(
        f"insert into {_table(table)} (msg_id, subject, payload, headers) "
        "select m, s, p, $4::jsonb from unnest($1::text[], $2::text[], $3::bytea[]) "
        "with ordinality as r(m, s, p, i) order by i",
        ids,
        [subject for subject, _ in messages],
        payloads,
        json.dumps(headers) if headers else None,
    )
    return ids


class OutboxMetrics:
    """``balans_<service>_outbox_sent_total``, ``..._outbox_errors_total`` and
    ``..._outbox_pending`` (rows not yet acknowledged after the last pass)."""

    _made: ClassVar[dict[str, OutboxMetrics]] = {}

    def __init__(self, service: str) -> None:
        prefix = f"balans_{service}_outbox"
        self.sent = Counter(f"{prefix}_sent_total", "Outbox messages JetStream acknowledged.")
        self.errors = Counter(
            f"{prefix}_errors_total", "Outbox passes cut short by a publish or database error."
        )
        self.pending = Gauge(f"{prefix}_pending", "Outbox messages not yet acknowledged.")

    @classmethod
    def of(cls, service: str) -> OutboxMetrics:
        if service not in cls._made:
            cls._made[service] = cls(service)
        return cls._made[service]


class OutboxRelay:
    """Sends a service's outbox to JetStream: at each wake-up (after a commit) and every
    ``poll_interval_s`` (restarts, other processes of the service, retries)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        js: JetStreamContext,
        table: str,
        service: str,
        *,
        poll_interval_s: float = 1.0,
        batch: int = 200,
        publish_timeout_s: float = 5.0,
    ) -> None:
        self.pool = pool
        self.js = js
        self.table = _table(table)
        self.poll_interval_s = poll_interval_s
        self.batch = batch
        self.publish_timeout_s = publish_timeout_s
        self.metrics = OutboxMetrics.of(service)
        self._wake = asyncio.Event()
        self._pruned_at = 0.0

    def wake(self) -> None:
        """Send soon: something was committed."""
        self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Pass after pass until ``stopping``; a failed pass is logged, counted, retried."""
        while not stopping.is_set():
            self._wake.clear()
            try:
                while await self.send_pending() == self.batch:
                    pass  # a full batch: more are waiting
                await self._prune()
                await self._count_pending()
            except (NatsError, TimeoutError, asyncpg.PostgresError, OSError) as exc:
                self.metrics.errors.inc()
                log.warning("outbox pass failed; retrying", table=self.table, error=repr(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(stopping), self.poll_interval_s)

    async def _wait(self, stopping: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def send_pending(self) -> int:
        """Send up to ``batch`` unsent rows in order; returns how many JetStream took.

        The rows are locked while they are sent, so two relays of one service do not send
        the same rows at once. They are published one after the other without waiting for
        each acknowledgement (in order on the wire, so JetStream stores them in order), then
        the acknowledgements are awaited: one round trip for the pass rather than one a row.
        A row whose publish failed ends the pass after marking the rows JetStream took; it
        and the rows after it are sent again in the next pass (the stream's duplicate window
        drops the ones it already has).
        """
        sent: list[int] = []
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"""select id, msg_id, subject, payload, headers from {self.table}
                    where sent_at is null order by id limit $1 for update skip locked""",
                self.batch,
            )
            try:
                acks = []
                for row in rows:
                    headers = json.loads(row["headers"]) if row["headers"] else {}
                    headers["Nats-Msg-Id"] = row["msg_id"]
                    acks.append(
                        await self.js.publish_async(
                            row["subject"],
                            bytes(row["payload"]),
                            wait_stall=self.publish_timeout_s,
                            headers=headers,
                        )
                    )
                for row, ack in zip(rows, acks, strict=False):
                    await asyncio.wait_for(ack, self.publish_timeout_s)
                    sent.append(row["id"])
            finally:
                if sent:
                    await conn.execute(
                        f"update {self.table} set sent_at = now() where id = any($1::bigint[])",
                        sent,
                    )
                    self.metrics.sent.inc(len(sent))
        return len(sent)

    async def _count_pending(self) -> None:
        async with self.pool.acquire() as conn:
            pending = await conn.fetchval(
                f"select count(*) from {self.table} where sent_at is null"
            )
        self.metrics.pending.set(pending)

    async def _prune(self) -> None:
        now = time.monotonic()
        if now - self._pruned_at < PRUNE_EVERY_S:
            return
        self._pruned_at = now
        async with self.pool.acquire() as conn:
            await conn.execute(
                f"""delete from {self.table}
                    where sent_at < now() - make_interval(secs => $1)""",
                SENT_KEPT_S,
            )
