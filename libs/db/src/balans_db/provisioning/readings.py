"""Register readings entered by hand (a move-out read, readings from before the modules were
installed): meter serial, time, register. They are stored as the module counts a
concentrator would have sent, through the concentrators' idempotent writer
(:func:`balans_db.queries.ingest.insert_readings`): a reading already stored at that time is
left alone, so entering the same readings twice changes nothing.

A register becomes a count through the meter's channel in force at that time:
``count = (register - register_offset) / pulse_weight``, rounded to the nearest pulse. The
whole set is checked first; any problem refuses all of it (:class:`InvalidDocumentError`,
each problem named by its row or path) and nothing is written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import asyncpg
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from balans_db.provisioning.validation import InvalidDocumentError, Problem
from balans_db.queries.ingest import insert_readings

CSV_COLUMNS = ("serial", "time", "register")


class RegisterReading(BaseModel):
    """One register read off a meter (in the meter's unit, kWh or m3)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    serial: str = Field(min_length=1, examples=["heat-100001-0"])
    time: AwareDatetime = Field(examples=["2026-01-16T00:00:00+02:00"])
    value: Decimal = Field(alias="register", ge=0, examples=["1234.567"])


@dataclass
class ReadingsReport:
    """What storing a set of readings did: rows new to the database, and per building the
    hours they touch (for the ReadingsStored announcement)."""

    received: int
    inserted: int
    hours: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)


def parse_csv(text: str) -> list[RegisterReading]:
    """Readings from CSV with the header ``serial,time,register`` (time ISO 8601 with an
    offset); every bad row is a problem named ``row N`` (N counts the header as row 1)."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = tuple(reader.fieldnames or ())
        rows = list(reader)
    except csv.Error as exc:
        raise InvalidDocumentError([Problem("file", f"not CSV: {exc}")]) from exc
    if header != CSV_COLUMNS:
        raise InvalidDocumentError(
            [
                Problem(
                    "row 1", f"the header must be {','.join(CSV_COLUMNS)}, not {','.join(header)}"
                )
            ]
        )
    readings: list[RegisterReading] = []
    problems: list[Problem] = []
    for n, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            problems.append(Problem(f"row {n}", "needs exactly the columns serial,time,register"))
            continue
        try:
            readings.append(RegisterReading.model_validate(row))
        except ValueError as exc:
            problems.extend(_row_problems(n, exc))
    if problems:
        raise InvalidDocumentError(problems)
    return readings


def _row_problems(n: int, exc: ValueError) -> list[Problem]:
    errors = getattr(exc, "errors", None)
    if errors is None:
        return [Problem(f"row {n}", str(exc))]
    return [
        Problem(f"row {n}.{'.'.join(str(x) for x in e['loc'])}", e["msg"])
        for e in errors(include_url=False)
    ]


_CHANNELS = """
select x.ord, m.building_id, m.pulse_weight, c.module_serial, c.input, c.register_offset
from unnest($1::text[], $2::timestamptz[]) with ordinality as x(serial, at, ord)
join meters m on m.serial = x.serial
join channels c on c.meter_id = m.id
  and (c.valid_from is null or c.valid_from <= x.at) and (c.valid_to is null or c.valid_to > x.at)
"""


@dataclass
class CheckedReadings:
    """Readings turned into module counts, or the problems that refuse them."""

    received: int
    pulses: list[tuple[int, int, datetime, int]] = field(default_factory=list)
    hours: dict[int, tuple[datetime, datetime]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


async def check_readings(
    conn: asyncpg.Connection, readings: Sequence[RegisterReading], paths: Sequence[str] = ()
) -> CheckedReadings:
    """Each reading against the stored meters and their channels (writes nothing);
    ``paths`` names the readings in the problems (``row N`` of a CSV by default)."""
    names = list(paths) or [f"row {n}" for n in range(2, len(readings) + 2)]
    known = await conn.fetch(
        "select serial from meters where serial = any($1::text[])",
        list({r.serial for r in readings}),
    )
    serials = {r["serial"] for r in known}
    rows = {
        r["ord"]: r
        for r in await conn.fetch(
            _CHANNELS, [r.serial for r in readings], [r.time for r in readings]
        )
    }
    out = CheckedReadings(received=len(readings))
    for i, reading in enumerate(readings):
        where = names[i]
        channel = rows.get(i + 1)
        if reading.serial not in serials:
            out.problems.append(Problem(f"{where}.serial", f"no meter {reading.serial!r}"))
            continue
        if channel is None:
            out.problems.append(
                Problem(
                    f"{where}.time", f"meter {reading.serial} is on no channel at {reading.time}"
                )
            )
            continue
        count = _count(reading.value, channel["register_offset"], channel["pulse_weight"])
        if count is None:
            out.problems.append(
                Problem(
                    f"{where}.register",
                    f"{reading.value} is below the register the meter's channel starts at "
                    f"({channel['register_offset']})",
                )
            )
            continue
        at = reading.time.astimezone(UTC)
        out.pulses.append((channel["module_serial"], channel["input"], at, count))
        hour = at.replace(minute=0, second=0, microsecond=0)
        low, high = out.hours.get(channel["building_id"], (hour, hour))
        out.hours[channel["building_id"]] = (min(low, hour), max(high, hour))
    return out


async def write_readings(conn: asyncpg.Connection, checked: CheckedReadings) -> ReadingsReport:
    """Store checked readings (none with problems) idempotently."""
    if checked.problems:
        raise InvalidDocumentError(checked.problems)
    inserted = (
        await insert_readings(conn, {"pulse_readings": checked.pulses}) if checked.pulses else 0
    )
    return ReadingsReport(received=checked.received, inserted=inserted, hours=checked.hours)


async def store_readings(
    conn: asyncpg.Connection, readings: Sequence[RegisterReading], paths: Sequence[str] = ()
) -> ReadingsReport:
    """Check every reading, then store all of them or, on any problem, nothing
    (InvalidDocumentError naming each problem)."""
    return await write_readings(conn, await check_readings(conn, readings, paths))


def _count(register: Decimal, offset: Decimal, weight: Decimal) -> int | None:
    try:
        pulses = ((register - offset) / weight).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    except InvalidOperation:
        return None
    return int(pulses) if pulses >= 0 else None
