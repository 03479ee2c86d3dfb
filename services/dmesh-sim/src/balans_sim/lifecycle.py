"""Meter exchanges and tenant changes in a simulated city, with their ground truth.

A planned exchange replaces a flat or riser meter on its module input at a moment inside
an hour: the module's count runs on or is reset, the new meter may have another pulse
weight and starts from its own register. The engine applies it to the counts it produces
(:meth:`balans_sim.engine.BuildingSim`); once simulated, the exchange carries the old
meter's final register, and is recorded in the world through the same code the
provisioning route uses (:func:`balans_db.exchanges.record_exchange`). The true quantity
through the input never changes, so allocation's result across the swap can be checked
against the truth.

A tenant change closes a flat's account on a day and opens a new one from that day
(billing splits the period; its ground truth is the day and the two account numbers).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import numpy as np
from pydantic import BaseModel, ConfigDict

from balans_db.exchanges import (
    Exchange,
    ExchangeRefusedError,
    NewMeter,
    is_recorded,
    record_exchange,
)
from balans_db.topology import MeterPlan, change_tenant
from balans_sim.climate import hour_start


class PlannedExchange(BaseModel):
    """An exchange the engine will simulate; ``final_register`` once it has."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "meter_exchange"
    building: str
    module: int
    input: int
    hour: int  # absolute simulated hour the swap falls in
    minute: int  # minutes into that hour
    old_serial: str
    new_serial: str
    old_weight: Decimal
    new_weight: Decimal
    counter_reset: bool
    start_register: Decimal
    final_register: Decimal | None = None

    @property
    def at(self) -> datetime:
        return hour_start(self.hour) + timedelta(minutes=self.minute)

    def record(self) -> Exchange:
        """What the operator enters (needs ``final_register``)."""
        assert self.final_register is not None, "simulate through the exchange first"
        return Exchange(
            module=self.module,
            input=self.input,
            at=self.at,
            old_serial=self.old_serial,
            new_serial=self.new_serial,
            final_register=self.final_register,
            start_register=self.start_register,
            counter_reset=self.counter_reset,
            create=NewMeter(self.new_serial, pulse_weight=self.new_weight),
        )


class TenantChange(BaseModel):
    """Ground truth: ``old_account`` holds ``flat`` until ``on`` (exclusive), then
    ``new_account`` from ``on``."""

    model_config = ConfigDict(extra="forbid")

    kind: str = "tenant_change"
    building: str
    flat: str
    old_account: str
    new_account: str
    on: date
    holder_name: str
    residents: int


EXCHANGEABLE = ("flat", "riser")  # the meters a fitter swaps on a routine visit


def plan_exchanges(
    building: str,
    meters: list[MeterPlan],
    seed: int,
    building_index: int,
    start_hour: int,
    hours: int,
    count: int,
) -> list[PlannedExchange]:
    """``count`` exchanges of distinct flat/riser meters within ``hours`` from
    ``start_hour``, drawn from the seed: half of them reset the module's counter, a
    third change the pulse weight (a newer meter with a finer pulse)."""
    rng = np.random.default_rng([seed, building_index, 31])
    candidates = [m for m in meters if m.role in EXCHANGEABLE]
    if not candidates or count <= 0 or hours < 2:
        return []
    chosen = rng.choice(len(candidates), size=min(count, len(candidates)), replace=False)
    out = []
    for k, i in enumerate(sorted(int(c) for c in chosen)):
        m = candidates[i]
        weight = Decimal(str(m.pulse_weight))
        finer = rng.random() < 1 / 3
        out.append(
            PlannedExchange(
                building=building,
                module=m.module,
                input=m.input,
                hour=start_hour + int(rng.integers(1, hours)),
                minute=int(rng.integers(0, 60)),
                old_serial=m.serial,
                new_serial=f"{m.serial}-x{k + 1}",
                old_weight=weight,
                new_weight=(weight / 10).normalize() if finer else weight,
                counter_reset=bool(rng.random() < 0.5),
                start_register=Decimal(int(rng.integers(0, 20))),
            )
        )
    return out


def plan_tenant_changes(
    building: str,
    accounts: list[tuple[str, str]],
    seed: int,
    building_index: int,
    start_hour: int,
    hours: int,
    count: int,
) -> list[TenantChange]:
    """``count`` move-outs/move-ins on distinct flats (``accounts``: (flat, account
    number)) on a day within ``hours`` from ``start_hour``, drawn from the seed."""
    rng = np.random.default_rng([seed, building_index, 37])
    if not accounts or count <= 0 or hours < 48:
        return []
    chosen = rng.choice(len(accounts), size=min(count, len(accounts)), replace=False)
    out = []
    for i in sorted(int(c) for c in chosen):
        flat, number = accounts[i]
        day = hour_start(start_hour + int(rng.integers(24, hours))).date()
        out.append(
            TenantChange(
                building=building,
                flat=flat,
                old_account=number,
                new_account=f"{number}-{day:%Y%m%d}",
                on=day,
                holder_name=f"New resident of flat {flat}",
                residents=int(rng.integers(1, 5)),
            )
        )
    return out


async def record_exchanges(conn: asyncpg.Connection, done: list[PlannedExchange]) -> int:
    """Record simulated exchanges in the world (each in its own transaction); one already
    recorded (the simulator restarted) is skipped. Returns how many were recorded."""
    recorded = 0
    for e in done:
        async with conn.transaction():
            if await is_recorded(conn, e.new_serial):
                continue
            try:
                await record_exchange(conn, e.record())
            except ExchangeRefusedError as exc:
                raise RuntimeError(f"simulated exchange {e.old_serial} refused: {exc}") from exc
            recorded += 1
    return recorded


async def record_tenant_changes(conn: asyncpg.Connection, changes: list[TenantChange]) -> int:
    """Close each old account on its day and open the new one on the same flat (skipped
    when the new account exists already). Returns how many were recorded."""
    recorded = 0
    for t in changes:
        async with conn.transaction():
            recorded += await change_tenant(
                conn, t.old_account, t.new_account, t.holder_name, t.residents, t.on
            )
    return recorded


def write_lifecycle_truth(path: Path, records: list[PlannedExchange] | list[TenantChange]) -> None:
    """Append exchanges or tenant changes to the ground-truth file (JSON lines, next to
    the faults)."""
    with path.open("a", encoding="utf-8") as f:
        for r in records:
            f.write(r.model_dump_json() + "\n")


async def record_due(
    conn: asyncpg.Connection,
    exchanged: list[PlannedExchange],
    tenant_changes: list[TenantChange],
    until: datetime,
) -> list[PlannedExchange]:
    """Record the exchanges simulated so far and the tenant changes on days before
    ``until`` (both skip what an earlier run recorded); return the exchanges new to the
    world (their buildings' hours from the swap must be computed again)."""
    new = [e for e in exchanged if not await is_recorded(conn, e.new_serial)]
    await record_exchanges(conn, new)
    await record_tenant_changes(conn, [t for t in tenant_changes if t.on <= until.date()])
    return new
