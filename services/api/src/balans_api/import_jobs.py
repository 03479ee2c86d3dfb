"""Import jobs: a checked document imported in the background, its progress and result
kept for ``GET /imports/{id}``.

Jobs live in the memory of the api process that accepted them (one process per
deployment today; docs/provisioning.md): a restart forgets finished jobs, and a job
cut off by a restart has written nothing (the import is one transaction). Device keys of
new concentrators are handed out once, in the first answer after the job succeeded.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import asyncpg
import structlog

from balans_api import audit
from balans_api.metrics import IMPORTS
from balans_api.provisioning import announce, keys_hex
from balans_api.provisioning_models import ImportJob, ImportProgress, ImportResult
from balans_core.outbox import OutboxRelay
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.importer import ImportReport, import_document
from balans_db.provisioning.validation import InvalidDocumentError
from balans_db.secrets import KeyVault

log = structlog.get_logger("api")

MAX_LINES = 1000
KEEP_FINISHED = 100  # finished jobs remembered (the oldest are forgotten first)


@dataclass
class _Job:
    id: str
    dry_run: bool
    buildings: int
    status: str = "queued"
    done: int = 0
    total: int = 0
    report: ImportReport | None = None
    problems: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, str] | None = None
    task: asyncio.Task[None] | None = None


class ImportJobs:
    """The import jobs of this api process."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}

    def start(
        self,
        pool: asyncpg.Pool,
        relay: OutboxRelay | None,
        vault: KeyVault,
        doc: WorldDocument,
        *,
        dry_run: bool,
        actor: str,
    ) -> ImportJob:
        job = _Job(uuid.uuid4().hex, dry_run, len(doc.buildings))
        self._forget_old()
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, pool, relay, vault, doc, actor))
        return self._view(job, reveal_keys=False)

    def get(self, job_id: str) -> ImportJob | None:
        """The job's state; the first call after it succeeded also carries the keys."""
        job = self._jobs.get(job_id)
        return None if job is None else self._view(job, reveal_keys=True)

    async def wait(self, job_id: str) -> None:
        """Until the job has finished (tests, the CLI)."""
        job = self._jobs[job_id]
        if job.task is not None:
            await asyncio.shield(job.task)

    async def _run(
        self,
        job: _Job,
        pool: asyncpg.Pool,
        relay: OutboxRelay | None,
        vault: KeyVault,
        doc: WorldDocument,
        actor: str,
    ) -> None:
        job.status = "running"

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            async with pool.acquire() as conn, conn.transaction():
                report = await import_document(
                    conn, doc, vault, dry_run=job.dry_run, progress=progress
                )
                if report.changed and not job.dry_run:
                    await audit.record(
                        conn,
                        actor,
                        "import",
                        f"import:{job.id}",
                        buildings=sorted(report.building_ids),
                        changes=report.changes.counts(),
                    )
                    await announce(conn, report)
        except InvalidDocumentError as exc:
            job.status, job.problems = "failed", [p.as_dict() for p in exc.problems]
            IMPORTS.labels("failed").inc()
            return
        except Exception as exc:
            job.status = "failed"
            job.problems = [{"path": "$", "message": "internal error; it has been logged"}]
            IMPORTS.labels("error").inc()
            log.error("import failed", job=job.id, exc_info=exc)
            return
        job.report, job.keys = report, keys_hex(report.keys)
        job.status = "succeeded"
        IMPORTS.labels("succeeded").inc()
        if relay is not None:
            relay.wake()

    def _view(self, job: _Job, *, reveal_keys: bool) -> ImportJob:
        keys = None
        if reveal_keys and job.status == "succeeded" and job.keys is not None:
            keys, job.keys = job.keys, None  # shown once
        result = None
        if job.report is not None:
            result = ImportResult(
                changes=job.report.changes.counts(),
                lines=job.report.changes.lines(MAX_LINES),
                buildings_changed=sorted(job.report.changes.changed_buildings()),
            )
        return ImportJob(
            id=job.id,
            status=job.status,
            dry_run=job.dry_run,
            buildings=job.buildings,
            progress=ImportProgress(done=job.done, total=job.total),
            result=result,
            problems=job.problems,
            concentrator_keys=keys,
        )

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.status in ("succeeded", "failed")]
        for job in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.id]
