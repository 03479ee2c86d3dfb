"""The rows of ``import_jobs`` (migration api_0010): every statement on them, so that any
api worker answers any job.

A job's keys are stored sealed and leave the table in the statement that reads them for
the first answer after success (``sealed_keys`` set to null under a row lock: of two
polls at once, on any workers, one gets them). A queued or running job whose heartbeat
is older than ``stale_after_s`` is answered as failed: its worker died or was stopped,
and the import, one transaction, wrote nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from balans_api.metrics import IMPORTS
from balans_api.provisioning_models import ImportJob, ImportProgress, ImportResult
from balans_db.secrets import KeyVault

INTERRUPTED = {"path": "$", "message": "interrupted: the import wrote nothing"}

_COLUMNS = "id, dry_run, buildings, status, done, total, result, problems"
_UNFINISHED = "status in ('queued', 'running')"
_STALE = f"{_UNFINISHED} and heartbeat_at < now() - make_interval(secs => $2)"

_INSERT = f"""insert into import_jobs (id, started_by, dry_run, buildings)
              values ($1, $2, $3, $4) returning {_COLUMNS}"""

# finished jobs (a stale one counts as finished) beyond the newest ``$3`` are deleted
_PRUNE = f"""delete from import_jobs where id in (
                 select id from import_jobs
                 where not ({_UNFINISHED}) or heartbeat_at < now() - make_interval(secs => $1)
                 order by created_at desc offset $2)"""

# the job, and its sealed keys if this is the first answer after success (erased here)
_READ = f"""with handed as (
                update import_jobs j set sealed_keys = null, updated_at = now()
                from (select id, sealed_keys from import_jobs
                      where id = $1 and sealed_keys is not null for update) k
                where j.id = k.id
                returning k.sealed_keys)
            select {_COLUMNS}, {_STALE} as stale, (select sealed_keys from handed) as keys
            from import_jobs where id = $1"""

_INTERRUPT = f"""update import_jobs set status = 'failed', problems = $3, updated_at = now()
                 where id = $1 and {_STALE}"""

_RUNNING = """update import_jobs set status = 'running', heartbeat_at = now(), updated_at = now()
              where id = $1 and status = 'queued'"""

_BEAT = f"""update import_jobs set done = $2, total = $3, heartbeat_at = now(), updated_at = now()
            where id = $1 and {_UNFINISHED}"""

_SUCCEEDED = """update import_jobs set status = 'succeeded', done = $2, total = $3, result = $4,
                    sealed_keys = $5, heartbeat_at = now(), updated_at = now()
                where id = $1 and status = 'running'"""

_FAILED = f"""update import_jobs set status = 'failed', problems = $2, updated_at = now()
              where id = $1 and {_UNFINISHED}"""


@dataclass
class Progress:
    """Rows written of rows to write, as the import reports them."""

    done: int = 0
    total: int = 0

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total


async def insert(
    conn: asyncpg.Connection,
    job_id: str,
    actor: str,
    *,
    dry_run: bool,
    buildings: int,
    keep_finished: int,
    stale_after_s: float,
) -> ImportJob:
    """A queued job; finished jobs beyond the newest ``keep_finished`` are deleted."""
    await conn.execute(_PRUNE, stale_after_s, keep_finished)
    row = await conn.fetchrow(_INSERT, job_id, actor, dry_run, buildings)
    return _view(row)


async def read(
    conn: asyncpg.Connection, vault: KeyVault, job_id: str, stale_after_s: float
) -> ImportJob | None:
    """The job (None if there is none); its keys in the first answer after success. A job
    whose heartbeat stopped is marked failed (interrupted) first."""
    row = await conn.fetchrow(_READ, job_id, stale_after_s)
    if row is not None and row["stale"]:
        interrupted = await conn.execute(_INTERRUPT, job_id, stale_after_s, [INTERRUPTED])
        if interrupted == "UPDATE 1":
            IMPORTS.labels("interrupted").inc()
        row = await conn.fetchrow(_READ, job_id, stale_after_s)
    if row is None:
        return None
    keys = None
    if row["keys"] is not None:
        keys = {
            serial: vault.open(bytes.fromhex(sealed), context=serial.encode()).hex()
            for serial, sealed in sorted(row["keys"].items(), key=lambda item: int(item[0]))
        }
    return _view(row, keys)


async def mark_running(conn: asyncpg.Connection, job_id: str) -> None:
    await conn.execute(_RUNNING, job_id)


async def beat(conn: asyncpg.Connection, job_id: str, progress: Progress) -> None:
    """Renew the heartbeat of a job still unfinished, with its progress."""
    await conn.execute(_BEAT, job_id, progress.done, progress.total)


async def mark_succeeded(
    conn: asyncpg.Connection,
    vault: KeyVault,
    job_id: str,
    progress: Progress,
    result: ImportResult,
    keys: dict[int, bytes],
) -> bool:
    """Record success, in the import's own transaction (the job reads as succeeded exactly
    when its changes are committed); False if the job was meanwhile answered as
    interrupted, and then the caller rolls the import back."""
    sealed = {
        str(serial): vault.seal(key, context=str(serial).encode()).hex()
        for serial, key in keys.items()
    }
    status = await conn.execute(
        _SUCCEEDED,
        job_id,
        progress.done,
        progress.total,
        result.model_dump(mode="json"),
        sealed or None,
    )
    return bool(status == "UPDATE 1")


async def mark_failed(
    conn: asyncpg.Connection, job_id: str, problems: list[dict[str, str]]
) -> None:
    await conn.execute(_FAILED, job_id, problems)


def _view(row: Any, keys: dict[str, str] | None = None) -> ImportJob:
    return ImportJob(
        id=row["id"],
        status=row["status"],
        dry_run=row["dry_run"],
        buildings=row["buildings"],
        progress=ImportProgress(done=row["done"], total=row["total"]),
        result=None if row["result"] is None else ImportResult.model_validate(row["result"]),
        problems=row["problems"],
        concentrator_keys=keys,
    )
