"""The explanation trail: for one flat and period, everything that produced its heat figure.

Built for a resident who disputes a bill: the meters and their registers at the period's
ends, the temperatures and k used, the method and the building's methodology, every
estimate with its reason, and how the building's common heat was shared. Pydantic models,
so the api can return them as JSON unchanged.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel

from balans_allocation.flags import Flag, describe
from balans_allocation.methodology import Methodology
from balans_allocation.verification import expired_from
from balans_db.queries import allocation, ingest, world


class MeterTrail(BaseModel):
    meter_id: int
    serial: str
    utility: str
    kind: str
    unit: str
    pulse_weight: float
    register_at_start: int | None
    register_at_end: int | None
    consumption: float
    estimated_hours: int
    verification_due_on: date | None = None
    # set when the verification expired before the period's end: how the methodology
    # counts its readings from then on (balans_allocation.verification)
    expired_readings: Literal["measured", "estimated"] | None = None


class SensorEstimateTrail(BaseModel):
    """Why and how hours were estimated: a faulty_sensor alert named a sensor of a pair the
    flat's heat rests on (docs/allocation.md, "Faulty sensors")."""

    alert_id: int
    module_serial: int
    sensor: str
    shape: str
    method: str  # cascade or history
    first_hour: datetime
    last_hour: datetime | None


class HourTrail(BaseModel):
    hour: datetime
    measured_kwh: float
    common_kwh: float
    adjustment_kwh: float
    total_kwh: float
    volume_m3: float | None
    delta_t_k: float | None
    k_kwh_per_m3k: float | None
    reasons: list[str]
    sensor_estimate: SensorEstimateTrail | None = None


class BuildingShare(BaseModel):
    building_kwh: float
    flats_measured_kwh: float
    common_kwh: float
    flat_area_m2: float
    building_area_m2: float
    hours_needing_review: int


class Explanation(BaseModel):
    flat_id: int
    flat_number: str
    building_id: int
    layout: str
    period_from: datetime
    period_to: datetime
    method: str
    methodology: dict[str, Any]
    measured_kwh: float
    common_kwh: float
    adjustment_kwh: float
    total_kwh: float
    estimated_hours: int
    meters: list[MeterTrail]
    building: BuildingShare
    hours: list[HourTrail]
    sensor_estimates: list[SensorEstimateTrail] = []


async def _meters(
    conn: asyncpg.Connection, flat_id: int, start: datetime, end: datetime, rule: Methodology
) -> list[MeterTrail]:
    rows = await ingest.flat_meter_registers(conn, flat_id, start, end)
    due = await world.verification_due_of(conn, [r["id"] for r in rows])
    used = {
        r["meter_id"]: r
        for r in await conn.fetch(
            """select meter_id, sum(value) as consumption,
                      count(*) filter (where estimated) as estimated
               from meter_consumption
               where meter_id = any($1::int[]) and hour >= $2 and hour < $3
               group by meter_id""",
            [r["id"] for r in rows],
            start,
            end,
        )
    }
    return [
        MeterTrail(
            meter_id=r["id"], serial=r["serial"], utility=r["utility"], kind=r["kind"],
            unit=r["unit"], pulse_weight=float(r["pulse_weight"]),
            register_at_start=r["at_start"], register_at_end=r["at_end"],
            consumption=float(used[r["id"]]["consumption"]) if r["id"] in used else 0.0,
            estimated_hours=used[r["id"]]["estimated"] if r["id"] in used else 0,
            verification_due_on=due.get(r["id"]),
            expired_readings=rule.expired_meter_readings
            if (expiry := expired_from(due.get(r["id"]))) is not None and expiry < end
            else None,
        )
        for r in rows
    ]  # fmt: skip


async def explain(
    conn: asyncpg.Connection, flat_id: int, start: datetime, end: datetime
) -> Explanation | None:
    """The trail of one flat over [start, end); None if the flat does not exist."""
    flat = await world.flat_in_building(conn, flat_id)
    if flat is None:
        return None
    hours = await conn.fetch(
        """select * from heat_allocation where flat_id = $1 and hour >= $2 and hour < $3
           order by hour""",
        flat_id,
        start,
        end,
    )
    building = await conn.fetchrow(
        """select coalesce(sum(building_kwh), 0) as b, coalesce(sum(flats_measured_kwh), 0) as m,
                  coalesce(sum(common_kwh), 0) as c, count(*) filter (where flags & $4 > 0) as r
           from allocation_building_hours where building_id = $1 and hour >= $2 and hour < $3""",
        flat["building_id"],
        start,
        end,
        int(Flag.REVIEW),
    )
    estimates = await allocation.flat_sensor_estimates(conn, flat_id, start, end)
    methodology = flat["methodology"]
    if isinstance(methodology, str):
        methodology = json.loads(methodology)
    rule = Methodology.model_validate(methodology)
    return Explanation(
        flat_id=flat_id,
        flat_number=flat["number"],
        building_id=flat["building_id"],
        layout=flat["layout"],
        period_from=start,
        period_to=end,
        method=hours[0]["method"] if hours else "",
        methodology=rule.model_dump(),  # defaults shown
        measured_kwh=sum(h["measured_kwh"] for h in hours),
        common_kwh=sum(h["common_kwh"] for h in hours),
        adjustment_kwh=sum(h["adjustment_kwh"] for h in hours),
        total_kwh=sum(h["total_kwh"] for h in hours),
        estimated_hours=sum(1 for h in hours if h["estimated"]),
        meters=await _meters(conn, flat_id, start, end, rule),
        building=BuildingShare(
            building_kwh=building["b"], flats_measured_kwh=building["m"],
            common_kwh=building["c"], flat_area_m2=float(flat["area_m2"]),
            building_area_m2=float(flat["b_area"]), hours_needing_review=building["r"],
        ),
        hours=[
            HourTrail(
                hour=h["hour"], measured_kwh=h["measured_kwh"], common_kwh=h["common_kwh"],
                adjustment_kwh=h["adjustment_kwh"], total_kwh=h["total_kwh"],
                volume_m3=h["volume_m3"], delta_t_k=h["delta_t_k"],
                k_kwh_per_m3k=h["k_kwh_per_m3k"], reasons=describe(h["flags"]),
                sensor_estimate=(e := allocation.estimate_of_hour(estimates, h["hour"],
                                                                   h["flags"]))
                and SensorEstimateTrail(**e),
            )
            for h in hours
        ],
        sensor_estimates=[SensorEstimateTrail(**e) for e in estimates],
    )  # fmt: skip
