"""``POST /imports/csv`` and ``GET /exports/csv``: the world document as CSV files per
entity in a zip archive, for spreadsheet users (docs/provisioning.md, "CSV files per
entity"). The files are assembled into the world document and imported by the same job
as ``POST /imports``, so importing them twice changes nothing; a malformed file is a 422
naming each problem by file and row, and nothing is written."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, status

from balans_api.deps import Operator, Pool, Staff
from balans_api.errors import ERROR_RESPONSES
from balans_api.provisioning_models import ImportJob
from balans_api.routes.imports import start_checked
from balans_db.provisioning.csv_tables import (
    parse_tables,
    row_problems,
    tables_from_zip,
    to_zip,
)
from balans_db.provisioning.document import WorldDocument
from balans_db.provisioning.export import export_document
from balans_db.provisioning.validation import InvalidDocumentError, check_document

router = APIRouter(tags=["provisioning"], responses=ERROR_RESPONSES)


def _checked(body: bytes) -> WorldDocument:
    """The document of the archive, or InvalidDocumentError naming file and row."""
    doc, origin = parse_tables(tables_from_zip(body))
    problems = check_document(doc, known_sites=[b.site for b in doc.buildings])
    if problems:
        raise InvalidDocumentError(row_problems(problems, origin))
    return doc


@router.post(
    "/imports/csv",
    response_model=ImportJob,
    status_code=status.HTTP_202_ACCEPTED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "a zip archive of CSV files (also sent as application/zip)",
                }
            },
        }
    },
)
async def start_csv_import(
    request: Request,
    pool: Pool,
    principal: Operator,
    dry_run: bool = Query(False, description="only report what would change"),
) -> ImportJob:
    """Import a zip of CSV files (one per entity) as a background job, like a world
    document."""
    return await start_checked(request, pool, principal, _checked, "csv", dry_run)


@router.get(
    "/exports/csv",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
)
async def export_csv(
    pool: Pool,
    _: Staff,
    building: list[str] | None = Query(None, description="building codes (default: all)"),
) -> Response:
    """The stored buildings as a zip of CSV files, one per entity."""
    async with pool.acquire() as conn:
        doc = await export_document(conn, building)
    return Response(
        to_zip(doc),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="balans-world.zip"'},
    )
