"""Register readings entered through the api or its CLI (a move-out read, historical
readings from CSV): stored through the concentrators' idempotent path
(:mod:`balans_db.provisioning.readings`) and announced as ``ReadingsStored`` through the
api's outbox, so allocation computes those hours as it does for a concentrator's upload."""

from __future__ import annotations

import asyncpg

from balans_api.provisioning import OUTBOX
from balans_core.outbox import enqueue
from balans_db.provisioning.readings import ReadingsReport
from balans_protocol import subjects
from balans_protocol.messages import ReadingsStored


async def announce_readings(conn: asyncpg.Connection, report: ReadingsReport) -> None:
    """ReadingsStored per building whose readings were new; call in the transaction that
    stored them (nothing is announced when every reading was stored before)."""
    if report.inserted == 0:
        return
    for building_id, (first, last) in sorted(report.hours.items()):
        message = ReadingsStored(
            building_id=building_id, hour_from=first, hour_to=last, rows=report.inserted
        )
        await enqueue(conn, OUTBOX, subjects.readings_stored(building_id), message)
