"""Import jobs: a checked document imported in the background, its progress and result
kept in the database for ``GET /imports/{id}`` (:mod:`balans_api.import_job_rows`).

Any api worker answers any job, and a restart forgets none. The worker running a job
renews its heartbeat every ``BALANS_IMPORT_HEARTBEAT_S``; a job whose heartbeat is older
than ``BALANS_IMPORT_INTERRUPTED_AFTER_S`` (its worker died) is answered as failed, "interrupted":
the import is one transaction, so it wrote nothing. Device keys of new concentrators are
kept sealed in the job's row and handed out once, in the first answer after the job
succeeded, by whichever worker gives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import structlog

from balans_api import audit, import_job_rows
from balans_api.import_job_rows import INTERRUPTED, Progress
from balans_api.metrics import IMPORT_JOB_WRITE_FAILURES, IMPORTS
from balans_api.provisioning import announce
from balans_api.provisioning_models import ImportJob, ImportResult
from balans_core.outbox import OutboxRelay
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.validation import InvalidDocumentError
from balans_db.secrets import KeyVault

log = structlog.get_logger("api")

MAX_LINES = 1000
KEEP_FINISHED = 100  # finished jobs kept (the oldest are deleted first)
INTERNAL_ERROR = {"path": "$", "message": "internal error; it has been logged"}


class _InterruptedError(Exception):
    """The job was answered as interrupted while it ran: its import must not commit."""


class ImportJobs:
    """Starts import jobs in this api process and answers any job from the database."""

    def __init__(self, heartbeat_s: float, stale_after_s: float) -> None:
        self.heartbeat_s = heartbeat_s
        self.stale_after_s = stale_after_s
        self._tasks: set[asyncio.Task[None]] = set()  # held so they are not collected

    async def start(
        self,
        pool: asyncpg.Pool,
        relay: OutboxRelay | None,
        vault: KeyVault,
        doc: WorldDocument,
        *,
        dry_run: bool,
        actor: str,
    ) -> ImportJob:
        job_id = uuid.uuid4().hex
        async with pool.acquire() as conn:
            job = await import_job_rows.insert(
                conn,
                job_id,
                actor,
                dry_run=dry_run,
                buildings=len(doc.buildings),
                keep_finished=KEEP_FINISHED,
                stale_after_s=self.stale_after_s,
            )
        task = asyncio.create_task(
            _run(pool, relay, vault, doc, job_id, dry_run, actor, self.heartbeat_s)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job

    async def stop(self) -> None:
        """Cancel the jobs this process runs (at shutdown, before the pool closes): their
        imports roll back and they are answered as interrupted at once."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def get(self, pool: asyncpg.Pool, vault: KeyVault, job_id: str) -> ImportJob | None:
        """The job's state; the first call after it succeeded also carries the keys."""
        async with pool.acquire() as conn:
            return await import_job_rows.read(conn, vault, job_id, self.stale_after_s)


async def _run(
    pool: asyncpg.Pool,
    relay: OutboxRelay | None,
    vault: KeyVault,
    doc: WorldDocument,
    job_id: str,
    dry_run: bool,
    actor: str,
    heartbeat_s: float,
) -> None:
    progress = Progress()
    stop = asyncio.Event()
    beating = asyncio.create_task(_heartbeat(pool, job_id, progress, stop, heartbeat_s))
    try:
        async with pool.acquire() as conn:
            await import_job_rows.mark_running(conn, job_id)
        outcome = await _import(pool, vault, doc, job_id, dry_run, actor, progress)
    except asyncio.CancelledError:
        IMPORTS.labels("interrupted").inc()
        await _fail(pool, job_id, [INTERRUPTED])
        raise
    except Exception as exc:
        outcome = "error"
        log.error("import failed", job=job_id, exc_info=exc)
        await _fail(pool, job_id, [INTERNAL_ERROR])
    finally:
        stop.set()
        await beating
    IMPORTS.labels(outcome).inc()
    if outcome == "succeeded" and not dry_run and relay is not None:
        relay.wake()


async def _import(
    pool: asyncpg.Pool,
    vault: KeyVault,
    doc: WorldDocument,
    job_id: str,
    dry_run: bool,
    actor: str,
    progress: Progress,
) -> str:
    """Run the import and record its outcome; the outcome's metric label."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            report = await import_document(
                conn, doc, vault, dry_run=dry_run, progress=progress.update
            )
            if report.changed and not dry_run:
                await audit.record(
                    conn,
                    actor,
                    "import",
                    f"import:{job_id}",
                    buildings=sorted(report.building_ids),
                    changes=report.changes.counts(),
                )
                await announce(conn, report)
            result = ImportResult(
                changes=report.changes.counts(),
                lines=report.changes.lines(MAX_LINES),
                buildings_changed=sorted(report.changes.changed_buildings()),
            )
            if not await import_job_rows.mark_succeeded(
                conn, vault, job_id, progress, result, report.keys
            ):
                raise _InterruptedError
    except InvalidDocumentError as exc:
        await _fail(pool, job_id, [p.as_dict() for p in exc.problems])
        return "failed"
    except _InterruptedError:
        log.warning("import rolled back: answered as interrupted meanwhile", job=job_id)
        return "interrupted"
    return "succeeded"


async def _fail(pool: asyncpg.Pool, job_id: str, problems: list[dict[str, str]]) -> None:
    """Record the failure; if even that fails the heartbeat stops, and the job is answered
    as interrupted (true: the import was rolled back)."""
    try:
        async with pool.acquire() as conn:
            await import_job_rows.mark_failed(conn, job_id, problems)
    except Exception as exc:
        IMPORT_JOB_WRITE_FAILURES.labels("failure").inc()
        log.error("import failure not recorded", job=job_id, exc_info=exc)


async def _heartbeat(
    pool: asyncpg.Pool, job_id: str, progress: Progress, stop: asyncio.Event, every_s: float
) -> None:
    """Renew the job's heartbeat, with its progress, every ``every_s`` until ``stop``."""
    while not stop.is_set():
        try:
            async with pool.acquire() as conn:
                await import_job_rows.beat(conn, job_id, progress)
        except Exception as exc:
            IMPORT_JOB_WRITE_FAILURES.labels("heartbeat").inc()
            log.error("import heartbeat failed", job=job_id, exc_info=exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
