"""The job that keeps closed months' profiles (run by the api's service process alone):

- a durable JetStream consumer of the announcements that can change a closed month's
  profile deletes the building's kept answers of the months they touch (the persister's
  stored readings: registers, temperatures; allocation's computed or recomputed hours:
  heat, consumption, the average flat; a topology change: flats, meters, exchanges, every
  month of the building);
- a loop builds what is missing: the building months the consumer invalidated, once no
  announcement has touched them for ``api_keep_settle_s`` (a backfill or an import of
  history arrives in many batches, each invalidating the same months: they are built once
  it is over, not after every batch) and balance has moved past them, and every
  ``api_keep_interval_s`` all closed months of the last ``api_keep_months`` (a month that
  just closed, the history on the first start, anything a failure left)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import structlog
from nats.aio.client import Client as Nats
from nats.js.client import JetStreamContext

from balans_api import kept_profiles, profile_keeper
from balans_api.calendar import add_months, month_range
from balans_api.metrics import KEPT_PROFILE_FAILURES
from balans_api.settings import ApiSettings
from balans_core.consumer import ConsumerSpec, JetStreamConsumer
from balans_protocol import subjects
from balans_protocol.messages import AllocationComputed, ReadingsStored, TopologyChanged
from balans_protocol.streams import ensure_streams

log = structlog.get_logger("keeper")


def closed_months(hour_from: datetime, hour_to: datetime, tz: str) -> list[date]:
    """The local months the hours [hour_from, hour_to] touch that have closed."""
    zone = ZoneInfo(tz)
    month = hour_from.astimezone(zone).date().replace(day=1)
    last = hour_to.astimezone(zone).date().replace(day=1)
    months = []
    while month <= last and kept_profiles.closed(month_range(month, tz)):
        months.append(month)
        month = add_months(month, 1)
    return months


class Keeper:
    """Invalidates on announcements and builds what is missing (see the module)."""

    def __init__(
        self, pool: asyncpg.Pool, settings: ApiSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.clock = clock
        self.zones: dict[int, str | None] = {}  # building -> its site's time zone
        # invalidated building months -> when the last announcement touched them
        self.dirty: dict[profile_keeper.BuildingMonth, float] = {}
        self.wake = asyncio.Event()

    async def _zone(self, building_id: int) -> str | None:
        if building_id not in self.zones:
            self.zones[building_id] = await self.pool.fetchval(
                """select s.timezone from buildings b join sites s on s.id = b.site_id
                   where b.id = $1""",
                building_id,
            )
        return self.zones[building_id]

    async def on_hours(self, event: ReadingsStored | AllocationComputed) -> None:
        """Hours of a building were stored or (re)computed: its closed months among them
        are deleted, then built again. A stored reading stamped ``ts`` belongs to the hour
        that ends at ``ts`` (the protocol), so the first hour stored rows can change is the
        one before ``hour_from``: a reading stamped at a month's first midnight is the
        month before's."""
        tz = await self._zone(event.building_id)
        if tz is None:  # a building this database does not hold (yet)
            return
        first = event.hour_from
        if isinstance(event, ReadingsStored):
            first -= timedelta(hours=1)
        months = closed_months(first, event.hour_to, tz)
        if months:
            await kept_profiles.invalidate(self.pool, event.building_id, months)
            self._rebuild({(event.building_id, m) for m in months})

    async def on_topology(self, event: TopologyChanged) -> None:
        """The building's flats or meters changed: every kept month of it goes."""
        self.zones.pop(event.building_id, None)
        await kept_profiles.invalidate(self.pool, event.building_id, None)
        self.wake.set()  # the periodic pass's scan finds all its months

    def _rebuild(self, pairs: set[profile_keeper.BuildingMonth]) -> None:
        self.dirty.update(dict.fromkeys(pairs, self.clock()))
        self.wake.set()

    def _settling(self, now: float) -> tuple[set[profile_keeper.BuildingMonth], float | None]:
        """The invalidated months still within their settle time, and when the first of
        them is due (None: none waits)."""
        settle = self.settings.api_keep_settle_s
        waiting = {pair for pair, at in self.dirty.items() if now < at + settle}
        due = min((self.dirty[pair] + settle for pair in waiting), default=None)
        return waiting, due

    def consumers(self, js: JetStreamContext) -> list[JetStreamConsumer[Any]]:
        def spec(subject: str, durable: str) -> ConsumerSpec:
            return ConsumerSpec(
                service="api",
                stream=subjects.EVENTS_STREAM,
                subject=subject,
                durable=durable,
                batch=64,
                max_deliveries=self.settings.consumer_max_deliveries,
            )

        name = self.settings.api_kept_consumer
        return [
            JetStreamConsumer.each(
                js, spec(subjects.READINGS_STORED_ALL, f"{name}-readings"), ReadingsStored,
                self.on_hours,
            ),
            JetStreamConsumer.each(
                js, spec(subjects.ALLOCATION_ALL, f"{name}-allocation"), AllocationComputed,
                self.on_hours,
            ),
            JetStreamConsumer.each(
                js, spec(subjects.TOPOLOGY_CHANGED_ALL, f"{name}-topology"), TopologyChanged,
                self.on_topology,
            ),
        ]  # fmt: skip

    async def build_pass(self, scan: bool) -> profile_keeper.Built:
        """Build the months invalidated since the last pass, and with ``scan`` every
        missing one."""
        waiting, _ = self._settling(self.clock())
        pairs = set(self.dirty) - waiting
        self.dirty = {pair: self.dirty[pair] for pair in waiting}
        todo = set(await profile_keeper.keepable(self.pool, pairs))
        if scan:
            todo |= set(await profile_keeper.missing(self.pool, self.keep)) - waiting
        return await profile_keeper.build(self.pool, sorted(todo))

    @property
    def keep(self) -> int:
        return self.settings.api_keep_months

    async def build_loop(self, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time()
        while not stopping.is_set():
            scan = loop.time() >= next_scan
            if scan:
                next_scan = loop.time() + self.settings.api_keep_interval_s
            self.wake.clear()
            try:
                built = await self.build_pass(scan)
                if built.months or built.failed:
                    log.info("kept profiles built", **vars(built))
            except Exception:  # the database away: the next pass tries again
                KEPT_PROFILE_FAILURES.inc()
                log.exception("kept profiles pass failed")
            _, due = self._settling(self.clock())
            wait = next_scan - loop.time()
            if due is not None:
                wait = min(wait, due - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_either(self.wake, stopping), max(0.0, wait))

    async def run(self, nats: Nats, stopping: asyncio.Event) -> None:
        if self.keep == 0:
            return
        js = nats.jetstream()
        await ensure_streams(js)
        await asyncio.gather(
            self.build_loop(stopping), *(c.run(stopping) for c in self.consumers(js))
        )


async def _either(a: asyncio.Event, b: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
