"""``/imports`` and ``/exports``: a building or a whole city as one world document
(docs/provisioning.md). An import is checked when it arrives (422 with every problem and
its path, nothing written) and then runs as a background job; ``GET /imports/{id}``
follows it. Importing the same document again changes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import APIRouter, Query, Request, status

from balans_api.deps import Operator, Pool, Staff
from balans_api.errors import ERROR_RESPONSES, not_found
from balans_api.import_jobs import ImportJobs
from balans_api.principal import Principal
from balans_api.provisioning import refused, vault_of
from balans_api.provisioning_models import ImportJob
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.export import export_document
from balans_db.provisioning.validation import (
    InvalidDocumentError,
    check_document,
    parse_document,
)

router = APIRouter(tags=["provisioning"], responses=ERROR_RESPONSES)


def jobs_of(request: Request) -> ImportJobs:
    jobs: ImportJobs = request.app.state.import_jobs
    return jobs


async def start_checked(
    request: Request,
    pool: asyncpg.Pool,
    principal: Principal,
    check: Callable[[bytes], WorldDocument],
    what: str,
    dry_run: bool,
) -> ImportJob:
    """Check the request's body as ``check`` reads it (off the event loop: a city is large)
    and start its import job; a body refused is a 422 naming each of its problems."""
    body = await request.body()
    try:
        doc = await asyncio.to_thread(check, body)
    except InvalidDocumentError as exc:
        raise refused(exc, what) from exc
    return await jobs_of(request).start(
        pool,
        getattr(request.app.state, "relay", None),
        vault_of(request),
        doc,
        dry_run=dry_run,
        actor=principal.actor,
    )


def _checked(body: bytes) -> WorldDocument:
    """The parsed document, or InvalidDocumentError with every problem that needs no
    database (the import itself adds the ones that do)."""
    doc = parse_document(body)
    problems = check_document(doc, known_sites=[b.site for b in doc.buildings])
    if problems:
        raise InvalidDocumentError(problems)
    return doc


@router.post(
    "/imports",
    response_model=ImportJob,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/WorldDocument"},
                }
            },
        }
    },
)
async def start_import(
    request: Request,
    pool: Pool,
    principal: Operator,
    dry_run: bool = Query(False, description="only report what would change"),
) -> ImportJob:
    """Import a world document (a building or a city) in the background. Problems of the
    document itself answer 422 at once; problems only the database shows (a serial that
    belongs to a building outside the document) end the job as failed. Nothing is
    written unless everything is right."""
    return await start_checked(request, pool, principal, _checked, "document", dry_run)


@router.get("/imports/{job_id}", response_model=ImportJob)
async def import_status(job_id: str, request: Request, pool: Pool, _: Operator) -> ImportJob:
    """Progress and result of an import (from any api worker); the device keys of new
    concentrators appear in the first answer after it succeeded, and never again."""
    job = await jobs_of(request).get(pool, vault_of(request), job_id)
    if job is None:
        raise not_found("import job")
    return job


@router.get("/exports", response_model=WorldDocument)
async def export(
    pool: Pool,
    _: Staff,
    building: list[str] | None = Query(None, description="building codes (default: all)"),
) -> Any:
    """The stored buildings as one world document (import it elsewhere to copy them)."""
    async with pool.acquire() as conn:
        doc = await export_document(conn, building)
    return doc.model_dump(mode="json")
