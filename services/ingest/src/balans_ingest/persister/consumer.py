"""The persister: UPLOAD messages in, readings written in one transaction per batch,
``ReadingsStored`` announced, then acked.

Fetching, acking and counting are :mod:`balans_core.consumer`'s. Nothing is acked before
its commit, so a crash at any point only causes a redelivery, and redelivered rows are
dropped by the primary keys. ``ReadingsStored`` needs no outbox: it is published before
the ack and derived from the batch itself, so a redelivered batch announces again even
though it writes nothing new.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from balans_core.consumer import (
    TRANSIENT_ERRORS,
    ConsumerSpec,
    Failures,
    JetStreamConsumer,
    PermanentError,
)
from balans_ingest.metrics import PERSISTER_BATCH_SECONDS, PERSISTER_ERRORS, PERSISTER_REFUSED
from balans_ingest.persister.batch import Batch
from balans_ingest.persister.storage import prepare_connection, write_batch
from balans_ingest.plausibility import RefusedError, UploadGate
from balans_ingest.settings import PersisterSettings
from balans_protocol import subjects
from balans_protocol.errors import ProtocolError
from balans_protocol.records import Section, split_sections
from balans_protocol.uploads import UploadHeaders

log = structlog.get_logger("persister")


@dataclass(frozen=True)
class Upload:
    """One UPLOAD message: its headers, its body and the body's record sections."""

    headers: UploadHeaders
    body: bytes
    sections: list[Section]


def decode_upload(msg: Msg) -> Upload:
    """Headers and sections of an UPLOAD; ``ValueError`` when either is malformed (ingest
    validated it, so this is a bug or a foreign publisher: never retried)."""
    headers = UploadHeaders.from_headers(msg.headers)  # pydantic.ValidationError
    try:
        sections = split_sections(msg.data)
    except ProtocolError as exc:
        raise ValueError(f"undecodable upload: {exc}") from exc
    return Upload(headers, msg.data, sections)


class Persister:
    """The durable consumer ``persister_durable`` with ``persister_workers`` loops, each
    writing batches of up to ``persister_batch_messages`` messages."""

    def __init__(self, settings: PersisterSettings, nc: Client, js: JetStreamContext) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.gate = UploadGate(settings, settings.persister_module_cache_s)

    def consumer_spec(self) -> ConsumerSpec:
        s = self.settings
        return ConsumerSpec(
            service="persister",
            stream=subjects.UPLOADS_STREAM,
            subject=subjects.UPLOADS_ALL,
            durable=s.persister_durable,
            batch=s.persister_batch_messages,
            max_ack_pending=s.persister_batch_messages * s.persister_workers * 4,
            ack_wait_s=s.persister_ack_wait_s,
            max_deliveries=s.consumer_max_deliveries,
            workers=s.persister_workers,
            fetch_timeout_s=s.persister_fetch_timeout_s,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until ``stopping`` is set; the batches in hand are finished first."""
        pool = await asyncpg.create_pool(
            self.settings.database_url,
            min_size=1,
            max_size=self.settings.persister_workers,
            init=prepare_connection,
        )
        try:

            async def write(uploads: Sequence[Upload]) -> Failures:
                return await self.write(pool, uploads)

            consumer = JetStreamConsumer(self.js, self.consumer_spec(), decode_upload, write)
            await consumer.run(stopping)
        finally:
            await pool.close()

    async def write(self, pool: asyncpg.Pool, uploads: Sequence[Upload]) -> Failures:
        """Check, write and announce a batch; returns the uploads that failed, by position.

        An implausible or undecodable upload is refused (dead-lettered at once; none of its
        records is stored). A database or NATS outage fails the whole batch (redelivered).
        Any other write error is retried upload by upload, so one poison upload cannot take
        its neighbours to the dead-letter stream with it.
        """
        failures: dict[int, BaseException] = {}
        batch = Batch()
        written: list[int] = []
        await self.gate.prepare(pool, {upload.headers.building_id for upload in uploads})
        for i, upload in enumerate(uploads):
            try:
                await self.gate.check(pool, upload.headers.building_id, upload.sections)
                batch.add(upload.headers, upload.body)
                written.append(i)
            except RefusedError as exc:  # ingest checks too: an old or a foreign message
                PERSISTER_REFUSED.labels(exc.check).inc()
                failures[i] = PermanentError(str(exc))
            except ProtocolError as exc:
                PERSISTER_ERRORS.labels("bad_message").inc()
                failures[i] = PermanentError(f"undecodable upload: {exc}")
        try:
            await self._store(pool, batch)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            if len(written) == 1:
                failures[written[0]] = exc
                return failures
            log.warning("batch not stored, writing upload by upload", error=repr(exc))
            for i in written:
                alone = await self.write(pool, [uploads[i]])
                if alone:
                    failures[i] = alone[0]
        return failures

    async def _store(self, pool: asyncpg.Pool, batch: Batch) -> None:
        """Write the batch in one transaction, then announce what it holds."""
        started = time.perf_counter()
        try:
            async with pool.acquire() as conn:
                await write_batch(conn, batch)
        except Exception:
            PERSISTER_ERRORS.labels("database").inc()
            raise
        PERSISTER_BATCH_SECONDS.observe(time.perf_counter() - started)
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
        except Exception:
            PERSISTER_ERRORS.labels("announce").inc()
            raise
