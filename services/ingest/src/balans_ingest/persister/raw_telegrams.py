"""Hook for RAW_TELEGRAM records (wired/wireless M-Bus), called inside the batch's
transaction. The M-Bus integration (docs/mbus.md) decodes them into readings here; until
it does, they are counted as unhandled and dropped."""

from __future__ import annotations

import asyncpg

from balans_ingest.metrics import PERSISTER_RAW_TELEGRAMS
from balans_protocol.records import RawTelegramRecord
from balans_protocol.uploads import UploadHeaders


async def store_raw_telegrams(
    conn: asyncpg.Connection, telegrams: list[tuple[UploadHeaders, RawTelegramRecord]]
) -> None:
    """Turn the telegrams of one batch into readings (same transaction as the batch)."""
    del conn  # the M-Bus integration writes through it
    PERSISTER_RAW_TELEGRAMS.labels("unhandled").inc(len(telegrams))
