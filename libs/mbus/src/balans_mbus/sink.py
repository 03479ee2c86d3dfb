"""The persister's hook: RAW_TELEGRAM records in, readings of registered meters out.

``store_raw_telegrams`` runs on the persister's connection inside its transaction, so the
readings commit (or roll back) with the rest of the upload batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import structlog

from balans_db.secrets import KeyVault
from balans_mbus.compact import FormatCache
from balans_mbus.decoder import decode_telegram
from balans_mbus.metrics import READINGS, TELEGRAMS
from balans_mbus.model import DecodedTelegram, DecodeFailure
from balans_mbus.readings import PulseRow, TemperatureRow, identity_mismatch, readings_for
from balans_mbus.storage import (
    load_formats,
    load_meters,
    save_formats,
    upsert_pulses,
    upsert_temperatures,
)
from balans_protocol.records import RawTelegramRecord

log = structlog.get_logger("balans.mbus")


@dataclass
class StoredTelegrams:
    """What one batch of raw telegrams gave: rows written, their hours, outcomes.

    ``readings`` has, per building, the hour of every reading written (one entry per pulse
    or temperature row): what the persister adds to the batch's ReadingsStored.
    """

    pulses: int = 0
    temperatures: int = 0
    readings: dict[int, list[datetime]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)


def _address(decoded: DecodedTelegram) -> tuple[str, str] | None:
    return (decoded.header.manufacturer, decoded.header.id) if decoded.header else None


async def store_raw_telegrams(
    conn: asyncpg.Connection,
    vault: KeyVault,
    telegrams: Sequence[RawTelegramRecord],
    building_ids: Sequence[int] | None = None,
) -> StoredTelegrams:
    """Decode ``telegrams`` and write the readings of the registered meters among them.

    ``building_ids`` (one per telegram: the building of the concentrator that forwarded
    it) keeps a concentrator from writing another building's meters: such a telegram is
    counted as ``other_building`` and dropped, like a neighbour's unregistered meter."""
    result = StoredTelegrams()
    if not telegrams:
        return result
    formats = await load_formats(conn)
    known_formats = len(formats)
    # First pass only finds the senders (a throwaway cache: keys are not known yet).
    scout = FormatCache(headers for _, headers in formats.items())
    addresses = {_address(decode_telegram(t.data, None, scout)) for t in telegrams}
    meters = await load_meters(conn, vault, (a for a in addresses if a is not None))
    pulses: list[PulseRow] = []
    temperatures: list[TemperatureRow] = []
    unregistered: Counter[tuple[str, str]] = Counter()
    for i, telegram in enumerate(telegrams):
        decoded = decode_telegram(telegram.data, None, formats)
        address = _address(decoded)
        meter = meters.get(address) if address else None
        if (
            meter is not None
            and building_ids is not None
            and (meter.building_id != building_ids[i])
        ):
            result.outcomes["other_building"] += 1
            continue
        if meter is not None and meter.key is not None and not decoded.ok:
            decoded = decode_telegram(telegram.data, meter.key, formats)
        outcome = _outcome(decoded, meter is not None)
        reason = decoded.reason
        mismatch = identity_mismatch(decoded, meter) if meter is not None else None
        if mismatch is not None:
            outcome, reason = "identity_mismatch", mismatch
        elif meter is not None and decoded.ok:
            received = datetime.fromtimestamp(telegram.received_unix, UTC)
            registers, temperature = readings_for(decoded, meter, received)
            pulses.extend(registers)
            if temperature is not None:
                temperatures.append(temperature)
            written = [row.ts for row in (*registers, temperature) if row is not None]
            if written:
                result.readings.setdefault(meter.building_id, []).extend(written)
            else:
                outcome = "no_register"
        if outcome == "unknown_meter" and address is not None:
            unregistered[address] += 1
        elif outcome != "stored":
            log.warning(
                "mbus telegram not stored",
                outcome=outcome,
                reason=reason,
                address=address,
                module=telegram.module,
                telegram=telegram.data.hex(),
            )
        result.outcomes[outcome] += 1
    if unregistered:
        # normal on radio (neighbours' meters), so one line per batch, not per telegram
        log.info(
            "mbus telegrams of unregistered meters dropped",
            meters={f"{m} {i}": n for (m, i), n in sorted(unregistered.items())},
        )
    await upsert_pulses(conn, pulses)
    await upsert_temperatures(conn, temperatures)
    if len(formats) > known_formats:
        await save_formats(conn, formats)
    result.pulses, result.temperatures = len(pulses), len(temperatures)
    for outcome, count in result.outcomes.items():
        TELEGRAMS.labels(outcome).inc(count)
    READINGS.labels("pulse").inc(result.pulses)
    READINGS.labels("temperature").inc(result.temperatures)
    return result


def _outcome(decoded: DecodedTelegram, registered: bool) -> str:
    """``stored``, ``unknown_meter`` (someone else's meter: normal on radio) or the failure."""
    if decoded.ok:
        return "stored" if registered else "unknown_meter"
    if decoded.header is not None and not registered:
        return "unknown_meter"
    return str(decoded.failure or DecodeFailure.RECORDS_INVALID)
