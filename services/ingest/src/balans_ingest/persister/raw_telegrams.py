"""Hook for RAW_TELEGRAM records (wired/wireless M-Bus), called inside the batch's
transaction. The M-Bus integration (``balans_mbus.sink``, docs/mbus.md) decodes them and
writes the readings of registered standard meters through the same connection."""

from __future__ import annotations

from datetime import datetime
from functools import cache

import asyncpg

from balans_db.secrets import KeyVault
from balans_db.settings import DatabaseSettings
from balans_ingest.metrics import PERSISTER_RAW_TELEGRAMS
from balans_mbus.sink import store_raw_telegrams as store_mbus_telegrams
from balans_protocol.records import RawTelegramRecord
from balans_protocol.uploads import UploadHeaders


@cache
def _vault() -> KeyVault:
    """Meter keys are sealed under the same master key as concentrator keys."""
    return KeyVault.from_hex(DatabaseSettings().master_key)


async def store_raw_telegrams(
    conn: asyncpg.Connection, telegrams: list[tuple[UploadHeaders, RawTelegramRecord]]
) -> dict[int, list[datetime]]:
    """Turn the telegrams of one batch into readings (same transaction as the batch).

    Returns, per building, the hour of every reading written, for ReadingsStored.
    """
    stored = await store_mbus_telegrams(
        conn,
        _vault(),
        [record for _, record in telegrams],
        [headers.building_id for headers, _ in telegrams],
    )
    for outcome, count in stored.outcomes.items():
        PERSISTER_RAW_TELEGRAMS.labels(outcome).inc(count)
    return stored.readings
