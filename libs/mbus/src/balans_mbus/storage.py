"""SQL for the mbus tables (declared in :mod:`balans_db.tables.mbus`).

Connections are asyncpg connections passed in by the caller (the persister's, inside its
transaction, or a CLI's).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import asyncpg
import structlog
from cryptography.exceptions import InvalidTag

from balans_db.provisioning import mbus as provisioning
from balans_db.provisioning.mbus import key_context
from balans_db.queries import world
from balans_db.secrets import KeyVault
from balans_mbus.compact import FormatCache
from balans_mbus.metrics import KEYS_UNREADABLE
from balans_mbus.readings import MbusMeter, PulseRow, TemperatureRow

log = structlog.get_logger("balans.mbus")


async def register_meter(
    conn: asyncpg.Connection,
    vault: KeyVault,
    *,
    meter_id: int,
    manufacturer: str,
    device_id: str,
    key: bytes | None = None,
    version: int | None = None,
    medium: int | None = None,
) -> int:
    """Map M-Bus address (manufacturer, id) to ``meter_id``; return the virtual module serial.

    What the world document's ``mbus`` field does for one meter
    (:func:`balans_db.provisioning.mbus.register`), for scripts and tests: the virtual
    radio module hangs off the first concentrator of the meter's building and carries the
    meter on input 0; a heat meter also gets a sensor pair for its temperatures.
    """
    async with conn.transaction():
        return await provisioning.register(
            conn,
            vault,
            meter_id,
            manufacturer,
            device_id,
            version=version,
            medium=medium,
            key=key.hex() if key else None,
        )


async def load_meters(
    conn: asyncpg.Connection, vault: KeyVault, addresses: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], MbusMeter]:
    """The registered meters among ``addresses`` (manufacturer, id), keys opened."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    rows = await conn.fetch(
        """select mm.manufacturer, mm.device_id, mm.module_serial, mm.key_ciphertext,
                  mm.meter_id, mm.version, mm.medium
           from mbus_meters mm
           join unnest($1::text[], $2::text[]) as w(manufacturer, device_id)
             using (manufacturer, device_id)""",
        [address[0] for address in wanted],
        [address[1] for address in wanted],
    )
    meters = {m["id"]: m for m in await world.meters_by_id(conn, [r["meter_id"] for r in rows])}
    return {
        (row["manufacturer"], row["device_id"]): MbusMeter(
            meter_id=row["meter_id"],
            building_id=meters[row["meter_id"]]["building_id"],
            module_serial=row["module_serial"],
            unit=meters[row["meter_id"]]["unit"],
            pulse_weight=Decimal(meters[row["meter_id"]]["pulse_weight"]),
            key=_open_key(vault, row["manufacturer"], row["device_id"], row["key_ciphertext"]),
            version=row["version"],
            medium=row["medium"],
        )
        for row in rows
    }


def _open_key(
    vault: KeyVault, manufacturer: str, device_id: str, sealed: bytes | None
) -> bytes | None:
    """The meter's key; ``None`` (logged and counted) when the master key cannot open it,
    so one bad row does not block a whole upload batch: its telegrams fail as key_missing."""
    if sealed is None:
        return None
    try:
        return vault.open(sealed, context=key_context(manufacturer, device_id))
    except InvalidTag:
        KEYS_UNREADABLE.inc()
        log.error("mbus meter key cannot be opened", manufacturer=manufacturer, device_id=device_id)
        return None


async def load_formats(conn: asyncpg.Connection) -> FormatCache:
    """Every compact-frame format learnt so far."""
    return FormatCache(
        row["headers"] for row in await conn.fetch("select headers from mbus_formats")
    )


async def save_formats(conn: asyncpg.Connection, formats: FormatCache) -> None:
    """Remember learnt formats (idempotent)."""
    await conn.executemany(
        "insert into mbus_formats (signature, headers) values ($1, $2) on conflict do nothing",
        list(formats.items()),
    )


async def upsert_pulses(conn: asyncpg.Connection, rows: list[PulseRow]) -> None:
    """Write registers; within one hour the highest (latest) cumulative value wins."""
    await conn.executemany(
        """insert into pulse_readings (module_serial, input, ts, count) values ($1, $2, $3, $4)
           on conflict (module_serial, input, ts)
           do update set count = greatest(pulse_readings.count, excluded.count)""",
        [(row.module_serial, row.input, row.ts, row.count) for row in rows],
    )


async def upsert_temperatures(conn: asyncpg.Connection, rows: list[TemperatureRow]) -> None:
    """Keep each sample once, then set the touched hours' readings to their samples' mean.

    The mean covers every sample of the hour, from this batch and earlier ones; a resent
    sample (same module and reception time) is not counted twice.
    """
    if not rows:
        return
    await conn.executemany(
        """insert into mbus_temperature_samples
             (module_serial, hour, received_at, supply_centi_c, return_centi_c)
           values ($1, $2, $3, $4, $5) on conflict do nothing""",
        [
            (row.module_serial, row.ts, row.received_at, row.supply_centi_c, row.return_centi_c)
            for row in rows
        ],
    )
    touched = sorted({(row.module_serial, row.ts) for row in rows})
    await conn.execute(
        """insert into temperature_readings (module_serial, ts, supply_centi_c, return_centi_c)
           select s.module_serial, s.hour,
                  round(avg(s.supply_centi_c))::int, round(avg(s.return_centi_c))::int
           from mbus_temperature_samples s
           join unnest($1::bigint[], $2::timestamptz[]) as t(module_serial, hour)
             using (module_serial, hour)
           group by s.module_serial, s.hour
           on conflict (module_serial, ts) do update
           set supply_centi_c = excluded.supply_centi_c,
               return_centi_c = excluded.return_centi_c""",
        [serial for serial, _ in touched],
        [hour for _, hour in touched],
    )
