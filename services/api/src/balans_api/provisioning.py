"""The provisioning routes' common path: load a building as its world document, change
it, check the whole building and write the difference in one transaction, audit it, then
announce the topology change on NATS (balance follows it)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import structlog
from fastapi import Request
from nats.aio.client import Client as Nats

from balans_api import audit
from balans_api.errors import ApiError, not_found
from balans_api.metrics import PROVISIONING_REFUSALS, TOPOLOGY_EVENT_ERRORS
from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import WORLD_LOCK, ImportReport, import_document
from balans_db.provisioning.validation import InvalidDocumentError, parse_document
from balans_db.secrets import KeyVault
from balans_protocol import subjects
from balans_protocol.messages import TopologyChanged

log = structlog.get_logger("api")

Building = dict[str, Any]  # one building of a world document, as JSON data


def vault_of(request: Request) -> KeyVault:
    return KeyVault.from_hex(request.app.state.settings.master_key)


def refused(exc: InvalidDocumentError, what: str) -> ApiError:
    """422 naming every problem with its path."""
    PROVISIONING_REFUSALS.labels(what).inc()
    return ApiError(
        422,
        f"refused: {len(exc.problems)} problem(s) in the {what}",
        details=[p.as_dict() for p in exc.problems],
    )


async def load_building(conn: asyncpg.Connection, code: str) -> Building:
    """The stored building as world-document JSON data; 404 when there is none."""
    doc = await export_document(conn, [code])
    if not doc.buildings:
        raise not_found(f"building {code!r}")
    building: Building = doc.model_dump(mode="json")["buildings"][0]
    return building


async def write_document(
    conn: asyncpg.Connection, data: dict[str, Any], vault: KeyVault, what: str
) -> ImportReport:
    try:
        return await import_document(conn, parse_document(data), vault)
    except InvalidDocumentError as exc:
        raise refused(exc, what) from exc


async def change_building(
    request: Request,
    code: str,
    change: Callable[[Building], None],
    actor: str,
    action: str,
    target: str,
) -> ImportReport:
    """Apply ``change`` to building ``code`` (it edits the JSON data in place, raising
    ApiError for a missing or duplicate item), check and store the result, audit it."""
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
        building = await load_building(conn, code)
        change(building)
        report = await write_document(
            conn, {"buildings": [building]}, vault_of(request), "building"
        )
        await audit.record(
            conn, actor, action, target, building=code, changes=report.changes.counts()
        )
    await announce(request.app.state.nats, report)
    return report


async def announce(nats: Nats | None, report: ImportReport) -> None:
    """Publish TopologyChanged for every changed building (after the commit). A failed
    publish is logged and counted; balance also picks new buildings up at their first
    allocation."""
    if nats is None or not report.changed:
        return
    counts = report.changes.counts()
    for code, building_id in sorted(report.building_ids.items()):
        message = TopologyChanged(building_id=building_id, building_code=code, changes=counts)
        try:
            await nats.publish(
                subjects.topology_changed(building_id), message.model_dump_json().encode()
            )
        except Exception as exc:
            TOPOLOGY_EVENT_ERRORS.inc()
            log.error("topology event not published", building=code, error=str(exc))


def keys_hex(keys: dict[int, bytes]) -> dict[str, str]:
    return {str(serial): key.hex() for serial, key in sorted(keys.items())}
