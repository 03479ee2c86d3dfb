"""The balance service's NATS edges: the group and alert-action APIs and the analysis of
allocation events."""

from __future__ import annotations

import time
from collections.abc import Callable

import asyncpg
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from balans_balance.alert_actions import handle_alert_action
from balans_balance.analysis import analyse_window
from balans_balance.detectors.leak_tapping_balance_meter import ExcessSettings
from balans_balance.group_api import handle_group_request
from balans_balance.groups import GroupError, follow_topology, generate_building_groups
from balans_balance.loading import HOUR
from balans_balance.metrics import (
    ALERT_ACTIONS,
    ALERTS_OPEN,
    ANALYSIS_ERRORS,
    ANALYSIS_SECONDS,
    GROUP_REQUESTS,
    STORED_READINGS,
    TOPOLOGY_EVENTS,
)
from balans_balance.settings import BalanceSettings
from balans_balance.windows import BuildingStates
from balans_core.costs import BuildingCosts
from balans_core.outbox import OutboxRelay
from balans_protocol import subjects
from balans_protocol.messages import (
    AlertActionReply,
    AllocationComputed,
    GroupReply,
    ReadingsStored,
    TopologyChanged,
)
from balans_protocol.subjects import partition_of

log = structlog.get_logger("balance")


async def serve_alert_actions(nc: Client, pool: asyncpg.Pool, relay: OutboxRelay) -> Subscription:
    """Answer AlertActions on ``balans.balance.alerts`` (queue group: scale out freely); a
    resolve's announcement is sent by ``relay`` at once."""

    async def on_request(msg: Msg) -> None:
        try:
            reply = await handle_alert_action(pool, msg.data)
            relay.wake()
        except Exception as exc:
            ALERT_ACTIONS.labels("unknown", "error").inc()
            log.exception("alert action failed", error=str(exc))
            reply = AlertActionReply(ok=False, error="internal error")
        await msg.respond(reply.model_dump_json().encode())

    return await nc.subscribe(subjects.BALANCE_ALERTS_API, queue="balance", cb=on_request)


async def serve_group_api(nc: Client, pool: asyncpg.Pool) -> Subscription:
    """Answer GroupRequests on ``balans.balance.groups`` (queue group: scale out freely)."""

    async def on_request(msg: Msg) -> None:
        try:
            reply = await handle_group_request(pool, msg.data)
        except Exception as exc:
            GROUP_REQUESTS.labels("unknown", "error").inc()
            log.exception("group request failed", error=str(exc))
            reply = GroupReply(ok=False, error="internal error")
        await msg.respond(reply.model_dump_json().encode())

    return await nc.subscribe(subjects.BALANCE_GROUPS_API, queue="balance", cb=on_request)


async def follow_topology_event(
    event: TopologyChanged, pool: asyncpg.Pool, states: BuildingStates
) -> None:
    """A building's topology changed: its default groups follow (new meters join their
    groups) and its kept window is dropped (the next analysis reads it in full). An event
    of a building that no longer exists is counted and dropped; any other failure raises,
    so the consumer redelivers it."""
    states.forget(event.building_id)
    async with pool.acquire() as conn:
        try:
            added = await follow_topology(conn, event.building_id)
        except GroupError as exc:
            TOPOLOGY_EVENTS.labels("unknown_building").inc()
            log.warning("topology event of an unknown building", error=str(exc))
            return
    TOPOLOGY_EVENTS.labels("followed").inc()
    log.info("groups follow topology", building=event.building_code, added=added)


async def note_stored_readings(event: ReadingsStored, states: BuildingStates) -> None:
    """The persister stored rows of a building (``ReadingsStored``): rows of hours its kept
    window already holds (a late status or temperature, which moves no allocation figure
    and so brings no allocation event) are read again on the building's next turn. A row
    stamped ``ts`` covers the hour that ends at ``ts``, so the first hour they can change
    is the one before ``hour_from``. Nothing is read here."""
    async with states.lock(event.building_id):
        outcome = states.note_stored(event.building_id, event.hour_from - HOUR)
    STORED_READINGS.labels(outcome).inc()
    if outcome == "late":
        log.info(
            "late rows noted for the turn",
            building_id=event.building_id,
            hour_from=event.hour_from.isoformat(),
        )


async def forget_partition(states: BuildingStates, partition: int) -> None:
    """This process gave up an event partition: drop its buildings' kept windows (another
    process analyses them now; if one comes back, its window is read again)."""
    states.forget_where(lambda building_id: partition_of(building_id) == partition)


class OpenAlerts:
    """Keeps ``balans_balance_alerts_open`` current. Counting the open alerts by kind is a
    scan of every building's open alerts, so it runs at most once per ``every_s`` seconds
    (about a scrape interval), not after each analysis; a kind none is open of goes to 0."""

    def __init__(self, every_s: float = 15.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every_s = every_s
        self.clock = clock
        self._due = float("-inf")
        self._kinds: set[str] = set()

    async def refresh(self, pool: asyncpg.Pool) -> None:
        now = self.clock()
        if now < self._due:
            return
        self._due = now + self.every_s
        counts = dict(
            await pool.fetch("select kind, count(*) from alerts where state = 'open' group by kind")
        )
        self._kinds |= counts.keys()
        for kind in self._kinds:
            ALERTS_OPEN.labels(kind).set(counts.get(kind, 0))


async def analyse_event(
    event: AllocationComputed,
    pool: asyncpg.Pool,
    relay: OutboxRelay,
    settings: BalanceSettings,
    states: BuildingStates,
    open_alerts: OpenAlerts | None = None,
    costs: BuildingCosts | None = None,
) -> None:
    """Analyse the building of an AllocationComputed event on its kept window (reading
    the hours that arrived, :mod:`balans_balance.windows`) when it is the building's turn
    (:meth:`~balans_balance.windows.BuildingStates.turn`), and wake the relay for the alert
    transitions it wrote; an event between turns only notes its hours for the turn. A
    building first seen by this process gets its default groups first (afterwards only
    topology changes regenerate them). A failure drops the building's window, is counted,
    logged and raised (the consumer redelivers the event, then dead-letters it). An
    incremental analysis's CPU seconds go to ``costs`` (the partitions' weights): the
    event loop thread's, where the analysis runs (:mod:`balans_core.costs`)."""
    started, cpu_started = time.perf_counter(), time.thread_time()
    cfg = ExcessSettings(
        band_days=settings.balance_band_days,
        band_k=settings.balance_band_k,
        min_run=settings.balance_min_run_hours,
    )
    try:
        async with states.lock(event.building_id):
            why = states.turn(event.building_id, event.hour_from, event.hour_to)
            if not why:
                log.debug("waits for the building's turn", building_id=event.building_id)
                return
            async with pool.acquire() as conn:
                if event.building_id not in states:
                    await generate_building_groups(conn, event.building_id)
                window = await states.window(
                    conn,
                    event.building_id,
                    event.hour_from,
                    event.hour_to,
                    settings.balance_window_days,
                )
                result = await analyse_window(
                    conn,
                    window.data,
                    cfg=cfg,
                    min_coverage=settings.balance_min_coverage,
                    loss_target_share=settings.balance_loss_target_share,
                    series_from=window.read_from,
                    incomplete=window.kept.incomplete,
                )
                window.kept.incomplete = result.incomplete
    except Exception as exc:
        states.forget(event.building_id)
        ANALYSIS_ERRORS.inc()
        log.exception("analysis failed", building_id=event.building_id, error=str(exc))
        raise
    seconds = time.perf_counter() - started
    ANALYSIS_SECONDS.observe(seconds)
    if costs is not None and window.read == "incremental":  # the hourly cost (partitions' weights)
        costs.note(event.building_id, time.thread_time() - cpu_started)
    if any(result.transitions.values()):
        relay.wake()
    if open_alerts is not None:
        await open_alerts.refresh(pool)
    log.info(
        "building analysed",
        building_id=event.building_id,
        until=window.data.hours[-1].isoformat(),
        read=window.read,
        why=why,
        groups=result.groups_analysed,
        seconds=round(seconds, 4),
        **result.transitions,
    )
