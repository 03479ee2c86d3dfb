"""One refresh of every fleet source; a failing source is logged and counted, the rest go on."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog
from nats.js.client import JetStreamContext

from balans_db.queries import Db, allocation, ingest
from balans_fleet import metrics
from balans_fleet.jetstream import refresh_streams
from balans_fleet.settings import FleetSettings

log = structlog.get_logger("fleet")


class FleetCollector:
    """Sets the ``balans_fleet_*`` gauges from PostgreSQL and JetStream."""

    def __init__(self, settings: FleetSettings, db: Db, js: JetStreamContext) -> None:
        self.settings = settings
        self.db = db
        self.js = js

    async def refresh(self) -> dict[str, bool]:
        """Refresh every source once; return source -> whether it succeeded."""
        sources: dict[str, Callable[[], Awaitable[None]]] = {
            "concentrators": self._concentrators,
            "battery": self._battery,
            "estimated": self._estimated,
            "jetstream": lambda: refresh_streams(self.js),
        }
        return {name: await self._timed(name, source) for name, source in sources.items()}

    async def _timed(self, name: str, source: Callable[[], Awaitable[None]]) -> bool:
        started = time.perf_counter()
        try:
            await source()
        except Exception as exc:  # one broken source must not blind the others
            metrics.REFRESH_ERRORS.labels(name).inc()
            log.error("fleet refresh failed", source=name, error=repr(exc))
            return False
        metrics.REFRESH_SECONDS.labels(name).observe(time.perf_counter() - started)
        metrics.LAST_REFRESH.labels(name).set(time.time())
        return True

    async def _concentrators(self) -> None:
        window = timedelta(hours=self.settings.fleet_silent_after_hours)
        counts = await ingest.concentrator_counts(self.db, window)
        metrics.CONCENTRATORS.set(counts["total"])
        metrics.CONCENTRATORS_SILENT.set(counts["silent"])

    async def _battery(self) -> None:
        window = timedelta(hours=self.settings.fleet_battery_lookback_hours)
        counts = await ingest.battery_counts(self.db, window, self.settings.fleet_low_battery_mv)
        metrics.MODULES_REPORTING.set(counts["reporting"])
        metrics.MODULES_LOW_BATTERY.set(counts["low"])

    async def _estimated(self) -> None:
        window = timedelta(hours=self.settings.fleet_estimated_window_hours)
        for utility, share in (await allocation.estimated_shares(self.db, window)).items():
            metrics.ESTIMATED_SHARE.labels(utility).set(share)
