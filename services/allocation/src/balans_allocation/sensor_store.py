"""The SQL of ``allocation_sensor_estimates`` (migration ``allocation_0005``): the faulty
sensor pairs whose hours allocation estimates (:mod:`balans_allocation.sensor_estimates`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from balans_allocation.sensor_estimates import SensorEstimate


def _estimate(row: asyncpg.Record) -> SensorEstimate:
    coefficients = row["coefficients"]
    return SensorEstimate(
        alert_id=row["alert_id"],
        module_serial=row["module_serial"],
        sensor=row["sensor"],
        method=row["method"],
        first_hour=row["first_hour"],
        last_hour=row["last_hour"],
        flat_ids=tuple(row["flat_ids"]),
        coefficients=json.loads(coefficients) if isinstance(coefficients, str) else coefficients,
    )


async def get(conn: asyncpg.Connection, alert_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "select * from allocation_sensor_estimates where alert_id = $1", alert_id
    )


async def save(
    conn: asyncpg.Connection, building_id: int, shape: str, estimate: SensorEstimate
) -> None:
    """Insert or replace the estimate of an alert (measured again if it was dismissed)."""
    await conn.execute(
        """insert into allocation_sensor_estimates as t
               (alert_id, building_id, module_serial, sensor, shape, flat_ids, first_hour,
                last_hour, method, coefficients)
           values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb)
           on conflict (alert_id) do update set
               module_serial = excluded.module_serial, sensor = excluded.sensor,
               shape = excluded.shape, flat_ids = excluded.flat_ids,
               first_hour = excluded.first_hour, last_hour = excluded.last_hour,
               method = excluded.method, coefficients = excluded.coefficients,
               dismissed = false, updated_at = now()""",
        estimate.alert_id,
        building_id,
        estimate.module_serial,
        estimate.sensor,
        shape,
        list(estimate.flat_ids),
        estimate.first_hour,
        estimate.last_hour,
        estimate.method,
        json.dumps(estimate.coefficients),
    )


async def close(conn: asyncpg.Connection, alert_id: int, last_hour: datetime | None) -> None:
    """The fault ended (or was fixed) at ``last_hour``: later hours are measured."""
    await conn.execute(
        """update allocation_sensor_estimates set last_hour = $2, updated_at = now()
           where alert_id = $1""",
        alert_id,
        last_hour,
    )


async def dismiss(conn: asyncpg.Connection, alert_id: int) -> None:
    """A false alarm: every hour of the alert is measured again."""
    await conn.execute(
        """update allocation_sensor_estimates set dismissed = true, updated_at = now()
           where alert_id = $1""",
        alert_id,
    )


async def of_windows(
    conn: asyncpg.Connection, windows: Sequence[tuple[int, datetime, datetime]]
) -> dict[int, list[SensorEstimate]]:
    """The estimates in force in each (building, start, end) window, by building (one query)."""
    if not windows:
        return {}
    rows = await conn.fetch(
        """select distinct on (e.alert_id) e.* from allocation_sensor_estimates e
           join unnest($1::int[], $2::timestamptz[], $3::timestamptz[]) w(b, s, t)
             on e.building_id = w.b and e.first_hour < w.t
                and (e.last_hour is null or e.last_hour >= w.s)
           where not e.dismissed
           order by e.alert_id""",
        [w[0] for w in windows],
        [w[1] for w in windows],
        [w[2] for w in windows],
    )
    out: dict[int, list[SensorEstimate]] = {}
    for row in rows:
        out.setdefault(row["building_id"], []).append(_estimate(row))
    return out
