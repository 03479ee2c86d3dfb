"""Meter exchange: meter X taken off a module input at time T and meter Y put on it.

The model (docs/provisioning.md, "Meter exchange"). A module counts pulses on an input;
a meter's register is ``register_offset + count × pulse_weight`` during the period its
channel maps that input to it. An exchange closes X's period at T with the module count
that X's final register R1 stands for, and opens Y's period at T with the module count at
the swap: the same count if the module's counter runs on, 0 if it was reset (or a count
read off the module). Y's offset makes its register read R2 there. Consumption is then
worked out per period, each from its own counts and pulse weight, and the periods add up:
no spike, no negative value, nothing lost, whatever the counter did and whatever the two
pulse weights are.

Everything is written in the caller's transaction, under the world lock, so it is the
same code for the provisioning route and for the simulator's ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import asyncpg

from balans_db.provisioning.importer import WORLD_LOCK
from balans_db.queries import Db


@dataclass(frozen=True)
class SwapCounts:
    """The module's counts where the periods meet, and the new meter's offset."""

    old_count_at_end: int
    new_count_at_start: int
    new_register_offset: Decimal


def swap_counts(
    final_register: Decimal,
    start_register: Decimal,
    old_weight: Decimal,
    new_weight: Decimal,
    old_offset: Decimal = Decimal(0),
    counter_reset: bool = False,
    module_count: int | None = None,
) -> SwapCounts:
    """The counts of an exchange: X's final register in X's pulses, the module count Y
    starts from (``module_count`` if read off the module; else 0 after a reset, or X's
    final count when the counter runs on), and Y's offset so that its register reads
    ``start_register`` at that count."""
    old_end = int(((final_register - old_offset) / old_weight).to_integral_value(ROUND_HALF_EVEN))
    new_start = module_count if module_count is not None else (0 if counter_reset else old_end)
    return SwapCounts(old_end, new_start, start_register - new_start * new_weight)


@dataclass(frozen=True)
class NewMeter:
    """A meter created by the exchange; the fields left None are the old meter's."""

    serial: str
    pulse_weight: Decimal | None = None
    kind: str | None = None
    accuracy_class: str | None = None
    verified_on: date | None = None


@dataclass(frozen=True)
class Exchange:
    """What the operator records."""

    module: int
    input: int
    at: datetime
    old_serial: str
    new_serial: str
    final_register: Decimal
    start_register: Decimal
    counter_reset: bool = False
    module_count: int | None = None
    create: NewMeter | None = None


@dataclass
class ExchangeRefusedError(Exception):
    """The exchange cannot be recorded; ``problems`` are (field, message) pairs."""

    problems: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{f}: {m}" for f, m in self.problems)


@dataclass(frozen=True)
class Recorded:
    building_id: int
    building_code: str
    old_meter_id: int
    new_meter_id: int
    counts: SwapCounts
    created: bool


async def record_exchange(conn: asyncpg.Connection, x: Exchange) -> Recorded:
    """Check and write an exchange (close X's channel period, open Y's, create Y if
    asked); raise :class:`ExchangeRefusedError` naming every problem, having written nothing.
    Call inside a transaction."""
    await conn.execute("select pg_advisory_xact_lock($1)", WORLD_LOCK)
    problems: list[tuple[str, str]] = []
    old = await conn.fetchrow(
        """select c.id as channel_id, c.valid_from, c.valid_to, c.register_offset,
                  c.module_serial, c.input, m.id, m.building_id, b.code as building_code,
                  m.utility, m.kind, m.role, m.flat_id, m.riser_id, m.pulse_weight, m.unit,
                  m.pipe, m.accuracy_class, m.has_valve
           from meters m join channels c on c.meter_id = m.id
           join buildings b on b.id = m.building_id where m.serial = $1""",
        x.old_serial,
    )
    if old is None:
        raise ExchangeRefusedError([("old_serial", f"no meter {x.old_serial!r} on a channel")])
    if (old["module_serial"], old["input"]) != (x.module, x.input):
        problems.append(
            (
                "module",
                f"meter {x.old_serial} is on module {old['module_serial']} input "
                f"{old['input']}, not module {x.module} input {x.input}",
            )
        )
    if old["valid_to"] is not None:
        problems.append(("old_serial", f"meter {x.old_serial} left its input at {old['valid_to']}"))
    if old["valid_from"] is not None and x.at <= old["valid_from"]:
        problems.append(("at", f"meter {x.old_serial} was put on its input at {old['valid_from']}"))
    new = await conn.fetchrow(
        """select m.id, m.building_id, m.utility, m.unit, m.pulse_weight,
                  exists(select 1 from channels c where c.meter_id = m.id) as wired
           from meters m where m.serial = $1""",
        x.new_serial,
    )
    if x.create is not None and new is not None:
        problems.append(("new_meter.serial", f"meter {x.new_serial} exists already"))
    if x.create is None and new is None:
        problems.append(("new_serial", f"no meter {x.new_serial}: create it (new_meter)"))
    if x.create is None and new is not None:
        if new["building_id"] != old["building_id"]:
            problems.append(("new_serial", f"meter {x.new_serial} is in another building"))
        if (new["utility"], new["unit"]) != (old["utility"], old["unit"]):
            problems.append(
                ("new_serial", f"meter {x.new_serial} counts {new['utility']} in {new['unit']}, "
                 f"not {old['utility']} in {old['unit']}")
            )  # fmt: skip
        if new["wired"]:
            problems.append(("new_serial", f"meter {x.new_serial} is on a channel already"))
    problems += await _register_problems(conn, x, old)
    if problems:
        raise ExchangeRefusedError(problems)
    new_weight = (
        Decimal(new["pulse_weight"])
        if new is not None
        else (x.create.pulse_weight if x.create and x.create.pulse_weight else old["pulse_weight"])
    )
    counts = swap_counts(
        x.final_register, x.start_register, Decimal(old["pulse_weight"]), Decimal(new_weight),
        Decimal(old["register_offset"]), x.counter_reset, x.module_count,
    )  # fmt: skip
    after = await _first_count_after(conn, x)
    if after is not None and after[1] < counts.new_count_at_start:
        raise ExchangeRefusedError(
            [("counter_reset", f"the module counted {after[1]} at {after[0]}, below "
              f"{counts.new_count_at_start} at the swap: was its counter reset?")]
        )  # fmt: skip
    new_id = new["id"] if new is not None else await _create_meter(conn, x, old, new_weight)
    await conn.execute(
        "update channels set valid_to = $2, count_at_end = $3 where id = $1",
        old["channel_id"],
        x.at,
        counts.old_count_at_end,
    )
    await conn.execute(
        """insert into channels (meter_id, module_serial, input, valid_from, count_at_start,
                                 register_offset)
           values ($1, $2, $3, $4, $5, $6)""",
        new_id,
        x.module,
        x.input,
        x.at,
        counts.new_count_at_start,
        counts.new_register_offset,
    )
    return Recorded(
        old["building_id"], old["building_code"], old["id"], new_id, counts, new is None
    )


async def is_recorded(db: Db, new_serial: str) -> bool:
    """Whether the meter an exchange puts on exists already (the exchange was recorded)."""
    return bool(await db.fetchval("select 1 from meters where serial = $1", new_serial))


async def _register_problems(
    conn: asyncpg.Connection, x: Exchange, old: asyncpg.Record
) -> list[tuple[str, str]]:
    """The final register must not be below the old meter's last register before T."""
    last = await conn.fetchrow(
        """select ts, count from pulse_readings where module_serial = $1 and input = $2
             and ts < $3 and ($4::timestamptz is null or ts > $4)
           order by ts desc limit 1""",
        old["module_serial"],
        old["input"],
        x.at,
        old["valid_from"],
    )
    if last is None:
        return []
    register = Decimal(old["register_offset"]) + last["count"] * Decimal(old["pulse_weight"])
    if x.final_register < register:
        return [
            ("final_register", f"{x.final_register} is below meter {x.old_serial}'s register "
             f"{register.normalize()} at {last['ts'].isoformat()}")
        ]  # fmt: skip
    return []


async def _first_count_after(conn: asyncpg.Connection, x: Exchange) -> tuple[datetime, int] | None:
    row = await conn.fetchrow(
        """select ts, count from pulse_readings where module_serial = $1 and input = $2
             and ts > $3 order by ts limit 1""",
        x.module,
        x.input,
        x.at,
    )
    return None if row is None else (row["ts"], row["count"])


async def _create_meter(
    conn: asyncpg.Connection, x: Exchange, old: asyncpg.Record, weight: Decimal
) -> int:
    """The new meter, in the old one's place (building, flat, riser, role, pipe)."""
    spec = x.create or NewMeter(x.new_serial)
    meter_id: int = await conn.fetchval(
        """insert into meters (serial, utility, kind, role, building_id, flat_id, riser_id,
                               pulse_weight, unit, pipe, accuracy_class, has_valve,
                               installed_on, verified_on)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::timestamptz::date,
                   $14)
           returning id""",
        x.new_serial,
        old["utility"],
        spec.kind or old["kind"],
        old["role"],
        old["building_id"],
        old["flat_id"],
        old["riser_id"],
        weight,
        old["unit"],
        old["pipe"],
        spec.accuracy_class or old["accuracy_class"],
        old["has_valve"],
        x.at,
        spec.verified_on,
    )
    return meter_id


MARKERS = """
select n.valid_from as at, m.utility, om.serial as old_meter, m.serial as new_meter,
       f.number as flat, r.number as riser
from channels n join meters m on m.id = n.meter_id
left join flats f on f.id = m.flat_id left join risers r on r.id = m.riser_id
left join channels o on o.module_serial = n.module_serial and o.input = n.input
     and o.valid_to = n.valid_from
left join meters om on om.id = o.meter_id
where n.valid_from is not null and {where}
order by n.valid_from, m.serial"""
"""A published select of exchange markers (at, utility, old_meter, new_meter, flat,
riser), oldest first; format ``{where}`` with its condition."""


async def exchanges_of_building(db: Db, code: str, since: datetime, limit: int) -> list[Any] | None:
    """The first ``limit`` exchanges on the building's meters from ``since`` (``at``,
    ``utility``, ``old_meter``, ``new_meter``, ``flat``, ``riser``), oldest first; None if
    there is no building."""
    building_id = await db.fetchval("select id from buildings where code = $1", code)
    if building_id is None:
        return None
    return await db.fetch(
        MARKERS.format(where="m.building_id = $1 and n.valid_from >= $2") + " limit $3",
        building_id,
        since,
        limit,
    )
