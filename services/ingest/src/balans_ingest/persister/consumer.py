"""The persister loop: fetch UPLOAD messages, write them in one transaction, announce
what was stored, then ack. Nothing is acked before its commit, so a crash at any point
only causes a redelivery, and redelivered rows are dropped by the primary keys."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from pydantic import ValidationError

from balans_ingest.metrics import (
    PERSISTER_BATCH_SECONDS,
    PERSISTER_ERRORS,
    PERSISTER_MESSAGES,
    PERSISTER_REFUSED,
)
from balans_ingest.persister.batch import Batch
from balans_ingest.persister.storage import prepare_connection, write_batch
from balans_ingest.plausibility import RefusedError, UploadGate
from balans_ingest.settings import PersisterSettings
from balans_protocol import subjects
from balans_protocol.errors import ProtocolError
from balans_protocol.records import split_sections
from balans_protocol.uploads import UploadHeaders

log = structlog.get_logger("persister")

RETRY_DELAY_S = 1.0
DATABASE_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


class Persister:
    """Runs ``persister_workers`` fetch-write-ack loops on one durable consumer."""

    def __init__(self, settings: PersisterSettings, nc: Client, js: JetStreamContext) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.gate = UploadGate(settings, settings.persister_module_cache_s)

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.settings.persister_durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.persister_ack_wait_s,
            max_ack_pending=self.settings.persister_batch_messages
            * self.settings.persister_workers
            * 4,
            filter_subject=subjects.UPLOADS_ALL,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batch in hand is finished first."""
        workers = [
            asyncio.create_task(self._worker(stopping), name=f"persister-{i}")
            for i in range(self.settings.persister_workers)
        ]
        await asyncio.gather(*workers)

    async def _worker(self, stopping: asyncio.Event) -> None:
        subscription = await self.js.pull_subscribe(
            subjects.UPLOADS_ALL,
            durable=self.settings.persister_durable,
            stream=subjects.UPLOADS_STREAM,
            config=self.consumer_config(),
        )
        conn: asyncpg.Connection | None = None
        try:
            while not stopping.is_set():
                try:
                    msgs = await subscription.fetch(
                        self.settings.persister_batch_messages,
                        timeout=self.settings.persister_fetch_timeout_s,
                    )
                except TimeoutError:  # nothing to fetch (nats-py raises the builtin or its own)
                    continue
                except NatsError as exc:
                    PERSISTER_ERRORS.labels("fetch").inc()
                    log.warning("fetch failed", error=repr(exc))
                    await asyncio.sleep(RETRY_DELAY_S)
                    continue
                if conn is None or conn.is_closed():
                    conn = await self._connect()
                await self._process(conn, msgs)
        finally:
            await subscription.unsubscribe()
            if conn is not None:
                await conn.close()

    async def _connect(self) -> asyncpg.Connection:
        while True:
            try:
                conn = await asyncpg.connect(self.settings.database_url)
                await prepare_connection(conn)
                return conn
            except DATABASE_ERRORS as exc:
                PERSISTER_ERRORS.labels("database").inc()
                log.error("database connection failed", error=repr(exc))
                await asyncio.sleep(RETRY_DELAY_S)

    async def _process(self, conn: asyncpg.Connection, msgs: list[Msg]) -> None:
        batch = Batch()
        accepted: list[Msg] = []
        for i, msg in enumerate(msgs):
            try:
                headers = UploadHeaders.from_headers(msg.headers)
                await self.gate.check(conn, headers.building_id, split_sections(msg.data))
                batch.add(headers, msg.data)
            except RefusedError as exc:  # ingest checks too: an old message, or a foreign one
                PERSISTER_REFUSED.labels(exc.check).inc()
                log.error(
                    "dropping implausible upload",
                    concentrator=headers.concentrator,
                    module=exc.module,
                    check=exc.check,
                    error=exc.detail,
                )
                await msg.term()
                continue
            except DATABASE_ERRORS as exc:
                PERSISTER_ERRORS.labels("database").inc()
                log.error("registered modules not read; will be redelivered", error=repr(exc))
                await self._retry_later(accepted + msgs[i:])
                return
            except (ValidationError, ProtocolError) as exc:
                # ingest validated it, so this is a bug or a foreign publisher: never retry
                PERSISTER_ERRORS.labels("bad_message").inc()
                log.error("dropping undecodable upload", subject=msg.subject, error=str(exc))
                await msg.term()
                continue
            accepted.append(msg)
        started = time.perf_counter()
        try:
            await write_batch(conn, batch)
        except DATABASE_ERRORS as exc:
            PERSISTER_ERRORS.labels("database").inc()
            log.error("batch not stored; will be redelivered", error=repr(exc), messages=len(msgs))
            await self._retry_later(accepted)
            return
        PERSISTER_BATCH_SECONDS.observe(time.perf_counter() - started)
        if not await self._announce(batch):
            await self._retry_later(accepted)
            return
        for msg in accepted:
            await msg.ack()
        PERSISTER_MESSAGES.inc(len(accepted))

    async def _announce(self, batch: Batch) -> bool:
        """Publish ReadingsStored per building; False if JetStream did not take them all
        (the batch is then redelivered: rewriting it is a no-op, announcing is not)."""
        try:
            await asyncio.gather(
                *(
                    self.js.publish(
                        subjects.readings_stored(event.building_id),
                        event.model_dump_json().encode(),
                    )
                    for event in batch.events()
                )
            )
        except NatsError as exc:
            PERSISTER_ERRORS.labels("announce").inc()
            log.error("announcing stored readings failed", error=repr(exc))
            return False
        return True

    async def _retry_later(self, msgs: list[Msg]) -> None:
        try:
            for msg in msgs:
                await msg.nak(delay=RETRY_DELAY_S)
        except NatsError as exc:  # without the nak, ack_wait expiry redelivers them
            PERSISTER_ERRORS.labels("nak").inc()
            log.warning("nak failed", error=repr(exc))
        await asyncio.sleep(RETRY_DELAY_S)
