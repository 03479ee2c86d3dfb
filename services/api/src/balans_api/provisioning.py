"""The provisioning routes' common path: load a building as its world document, change
it, check the whole building and write the difference in one transaction, audit it and
announce the topology change (balance follows it) through the api's outbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from nats.aio.client import Client as Nats

from balans_api import audit
from balans_api.errors import ApiError, not_found
from balans_api.metrics import PROVISIONING_REFUSALS
from balans_core.outbox import OutboxRelay, enqueue
from balans_db.provisioning.export import export_document
from balans_db.provisioning.importer import WORLD_LOCK, ImportReport, import_document
from balans_db.provisioning.validation import InvalidDocumentError, parse_document
from balans_db.secrets import KeyVault
from balans_protocol import subjects
from balans_protocol.messages import TopologyChanged
from balans_protocol.streams import ensure_streams

log = structlog.get_logger("api")

OUTBOX = "api_outbox"

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
        await announce(conn, report)
    wake_relay(request.app)
    return report


async def announce(conn: asyncpg.Connection, report: ImportReport) -> None:
    """Write TopologyChanged for every changed building into the api's outbox; call in
    the transaction of the change, so the announcement exists exactly when the change
    does. The relay (:func:`wake_relay`, or the api's next pass) sends it."""
    if report.dry_run or not report.changed:
        return
    counts = report.changes.counts()
    for code, building_id in sorted(report.building_ids.items()):
        message = TopologyChanged(building_id=building_id, building_code=code, changes=counts)
        await enqueue(conn, OUTBOX, subjects.topology_changed(building_id), message)


@asynccontextmanager
async def outbox_relay(
    app: FastAPI, nats: Nats | None, poll_interval_s: float
) -> AsyncIterator[None]:
    """Run the relay of the api's outbox while the app runs (``app.state.relay``); none
    without NATS (the rows wait for an api process that has it)."""
    app.state.relay = None
    if nats is None:
        yield
        return
    js = nats.jetstream()
    try:
        await ensure_streams(js)
    except Exception as exc:  # the relay retries; announcements wait in the outbox
        log.warning("JetStream streams not ensured", error=repr(exc))
    relay = OutboxRelay(app.state.pool, js, OUTBOX, "api", poll_interval_s=poll_interval_s)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    app.state.relay = relay
    try:
        yield
    finally:
        stopping.set()
        await task


def wake_relay(app: FastAPI) -> None:
    """Send the outbox now (after a commit); without NATS the rows wait for a relay."""
    relay = getattr(app.state, "relay", None)
    if relay is not None:
        relay.wake()


def keys_hex(keys: dict[int, bytes]) -> dict[str, str]:
    return {str(serial): key.hex() for serial, key in sorted(keys.items())}
