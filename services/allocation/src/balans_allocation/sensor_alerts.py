"""Following balance's faulty_sensor alerts: the faulty pair's hours are estimated, and
measured again once the fault ends or the alert is dismissed.

allocation consumes ``balans.alerts.faulty_sensor`` (``AlertMessage``, durable consumer
``BALANS_ALLOCATION_SENSOR_CONSUMER``). Per announcement:

- ``open`` / ``updated``: the pair (``reason_params.module``) and the faulty sensor
  (``evidence.sensor``) are stored in ``allocation_sensor_estimates`` from the alert's
  ``first_hour`` on, with the estimate's coefficients fitted on the week before it
  (:mod:`balans_allocation.sensor_estimates`);
- ``closed`` by the detector (the fault ended) or ``resolution="resolved"`` (an operator
  says it was fixed): the estimate ends at the alert's ``last_hour``; later hours are
  measured;
- ``resolution="dismissed"`` (a false alarm): every hour is measured again.

Each change recomputes the building from the alert's first hour, in the same transaction,
as late data does: the changed hours are announced ``AllocationComputed(recomputation=
true)`` through the outbox, so billing corrects a month already invoiced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
import structlog

from balans_allocation import sensor_store
from balans_allocation.allocator import ADVISORY_LOCK_CLASS, floor_hour, on_readings_stored_many
from balans_allocation.building import HOUR, Building, load_building
from balans_allocation.metrics import SENSOR_ALERTS
from balans_allocation.readings import TemperatureWindow, load_temperature_windows
from balans_allocation.sensor_estimates import (
    SensorEstimate,
    fit,
    flats_on,
    method_of,
    neighbours,
)
from balans_allocation.settings import AllocationSettings
from balans_core.consumer import PermanentError
from balans_core.outbox import OutboxRelay
from balans_db.queries import world
from balans_protocol.messages import AlertMessage

log = structlog.get_logger("allocation")

KIND = "faulty_sensor"
FIT_HOURS = 168  # the week the estimate is fitted on
FIT_MARGIN = timedelta(hours=24)  # kept clear of the alert's first hour (a drift creeps in)
SENSORS = ("supply", "return", "pair")


async def _fitted(
    conn: asyncpg.Connection, building: Building, alert: AlertMessage, serial: int, sensor: str
) -> SensorEstimate:
    assert alert.first_hour is not None
    nb = neighbours(building, await world.flat_floors(conn, building.id), serial)
    serials = [p.module_serial for p in building.pairs]
    start = floor_hour(alert.first_hour) - FIT_MARGIN - FIT_HOURS * HOUR
    ((t_flow, t_return),) = await load_temperature_windows(
        conn, [TemperatureWindow(serials, start, FIT_HOURS)]
    )
    coefficients = fit(serial, nb, serials, t_flow, t_return)
    pair = next(p for p in building.pairs if p.module_serial == serial)
    return SensorEstimate(
        alert_id=alert.alert_id,
        module_serial=serial,
        sensor=sensor,
        method=method_of(sensor, nb, coefficients),
        first_hour=floor_hour(alert.first_hour),
        last_hour=None if alert.state != "closed" else alert.last_hour,
        flat_ids=flats_on(building, pair),
        coefficients=coefficients,
    )


def _pair_of(alert: AlertMessage, building: Building) -> tuple[int, str]:
    """The faulty pair's module serial and sensor, or PermanentError saying what is wrong."""
    serial = alert.reason_params.get("module")
    sensor = alert.evidence.get("sensor")
    if not isinstance(serial, int) or sensor not in SENSORS or alert.first_hour is None:
        raise PermanentError(
            f"faulty_sensor alert {alert.alert_id} names no pair (reason_params.module "
            f"{serial!r}, evidence.sensor {sensor!r}, first_hour {alert.first_hour})"
        )
    if not any(p.module_serial == serial for p in building.pairs):
        raise PermanentError(
            f"faulty_sensor alert {alert.alert_id}: module {serial} is no sensor pair of "
            f"building {building.id}"
        )
    return serial, sensor


def _settled(alert: AlertMessage, known: asyncpg.Record | None) -> bool:
    """Nothing left to do: a dismissal of an alert never followed, anything after a
    dismissal, or an open or updated announcement of an alert already closed (a closed
    alert never reopens: a new episode is a new alert; an earlier announcement redelivered
    late must not undo a later one)."""
    if known is None:
        return alert.resolution == "dismissed"
    return bool(known["dismissed"]) or (alert.state != "closed" and known["last_hour"] is not None)


def _unchanged(alert: AlertMessage, known: asyncpg.Record | None) -> bool:
    """An update of an open alert that moves neither its pair, its sensor nor its start."""
    return (
        known is not None
        and alert.state == "updated"
        and alert.first_hour is not None
        and known["first_hour"] == floor_hour(alert.first_hour)
        and known["module_serial"] == alert.reason_params.get("module")
        and known["sensor"] == alert.evidence.get("sensor")
    )


async def on_sensor_alert(
    conn: asyncpg.Connection, alert: AlertMessage, lateness: timedelta, lookaround: int
) -> str:
    """Follow one announcement; return what was done (``estimated``, ``ended``,
    ``dismissed``, ``unchanged``, ``ignored``), counted in
    ``balans_allocation_sensor_alerts_total``."""
    if alert.kind != KIND or alert.building_id is None:
        SENSOR_ALERTS.labels("ignored").inc()
        return "ignored"
    async with conn.transaction():
        # one writer per building: the recomputation below takes the same lock
        await conn.execute(
            "select pg_advisory_xact_lock($1, $2)", ADVISORY_LOCK_CLASS, alert.building_id
        )
        known = await sensor_store.get(conn, alert.alert_id)
        building = await load_building(conn, alert.building_id)
        if building is None:
            raise PermanentError(f"faulty_sensor alert {alert.alert_id}: no such building")
        if _settled(alert, known):
            SENSOR_ALERTS.labels("ignored").inc()
            return "ignored"
        if alert.resolution == "dismissed":
            assert known is not None
            await sensor_store.dismiss(conn, alert.alert_id)
            outcome, since = "dismissed", known["first_hour"]
        elif alert.state == "closed" and known is not None:
            await sensor_store.close(conn, alert.alert_id, alert.last_hour)
            outcome, since = "ended", known["first_hour"]
        elif _unchanged(alert, known):
            SENSOR_ALERTS.labels("unchanged").inc()
            return "unchanged"  # the open estimate already covers the hours to come
        else:
            serial, sensor = _pair_of(alert, building)
            estimate = await _fitted(conn, building, alert, serial, sensor)
            await sensor_store.save(conn, building.id, str(alert.evidence.get("sensor_fault")),
                                    estimate)  # fmt: skip
            outcome = "estimated" if alert.state != "closed" else "ended"
            since = estimate.first_hour
            if known is not None:
                since = min(since, known["first_hour"])
        # as if readings were stored at since + 1 h: the allocator recomputes from the hour
        # before an event's first hour (or an earlier anchor) up to the watermark
        announcements = await on_readings_stored_many(
            conn, {building.id: since + HOUR}, lateness, lookaround
        )
    SENSOR_ALERTS.labels(outcome).inc()
    log.info(
        "faulty sensor followed",
        alert_id=alert.alert_id,
        building_id=alert.building_id,
        outcome=outcome,
        since=since.isoformat(),
        recomputed=[(a.hour_from.isoformat(), a.hour_to.isoformat()) for a in announcements],
    )
    return outcome


def follower(
    pool: asyncpg.Pool, relay: OutboxRelay, settings: AllocationSettings
) -> Callable[[AlertMessage], Awaitable[None]]:
    """The consumer's handler: follow one announcement, then wake the outbox's relay to
    send the recomputation's announcements."""

    async def follow(alert: AlertMessage) -> None:
        async with pool.acquire() as conn:
            await on_sensor_alert(
                conn,
                alert,
                timedelta(hours=settings.allocation_lateness_hours),
                settings.allocation_lookaround_hours,
            )
        relay.wake()

    return follow
