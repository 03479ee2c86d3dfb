"""Plausibility of an UPLOAD's records: a time a reading can have, a module of the building.

A concentrator that authenticates is trusted to be that concentrator, not to tell the
truth: one reading dated two years ahead once made billing invoice months that had not
happened, and one concentrator could add heat to another building's flat. So every
record must carry a time in the legal window (not after now plus the clock-skew
allowance, not before the horizon; ``CommonSettings.readings_window``) and name a radio
module registered to the concentrator's building (RAW_TELEGRAM records may name module
0, the concentrator's own receiver).

The check is on the whole UPLOAD: one implausible record refuses the batch (nothing of it
is stored), because a concentrator that sends one impossible record cannot be trusted
with the rest of that batch either, and a partial store could not be told apart from a
complete one. Ingest checks at the edge (NACK with the reason), the persister checks
again in depth (a message from before the check, or published by anything else). Both
work on numpy views of the wire bytes: no Python object per reading.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import numpy as np
import structlog

from balans_core.settings import CommonSettings
from balans_db.queries import world
from balans_ingest.metrics import ERRORS, REFUSED
from balans_ingest.persister.copy_rows import wire_records
from balans_protocol.errors import NackReason
from balans_protocol.records import RawTelegramRecord, RecordType, Section, decode_section

log = structlog.get_logger("ingest.plausibility")

OWN_RECEIVER = 0  # RAW_TELEGRAM module 0: the concentrator's own M-Bus receiver
MISS_RELOAD_S = 1.0  # a module not in the cached set reloads the building at most this often


class Fetcher(Protocol):
    """An asyncpg pool or connection."""

    async def fetch(self, query: str, *args: object) -> list: ...


class RefusedError(Exception):
    """An UPLOAD with an implausible record; ``check`` is the metric label."""

    def __init__(self, reason: NackReason, check: str, module: int, detail: str) -> None:
        super().__init__(f"{reason.name}: {detail}")
        self.reason = reason
        self.check = check  # "future", "too_old" or "unregistered_module"
        self.module = module
        self.detail = detail


Columns = list[tuple[Section, np.ndarray, np.ndarray]]  # (section, modules, times)


def record_columns(sections: Sequence[Section]) -> Columns:
    """Each section with the module serial and the time (Unix s) of each of its records."""
    columns: Columns = []
    for section in sections:
        if section.record_type is RecordType.RAW_TELEGRAM:
            raws = [r for r in decode_section(section) if isinstance(r, RawTelegramRecord)]
            modules = np.array([r.module for r in raws], dtype=np.int64)
            ts = np.array([r.received_unix for r in raws], dtype=np.int64)
        else:
            records = wire_records(section.record_type, section.payload)
            modules, ts = records["module"].astype(np.int64), records["ts"].astype(np.int64)
        columns.append((section, modules, ts))
    return columns


def _at(ts_unix: int) -> str:
    return datetime.fromtimestamp(ts_unix, UTC).isoformat()


def check_times(columns: Columns, earliest: datetime, latest: datetime) -> None:
    """Raise :class:`RefusedError` at the first record dated outside [earliest, latest]."""
    low, high = int(earliest.timestamp()), int(latest.timestamp())
    for section, modules, ts in columns:
        if ts.min() >= low and ts.max() <= high:
            continue
        future = bool(ts.max() > high)
        i = int(np.argmax(ts > high if future else ts < low))
        raise RefusedError(
            NackReason.IMPLAUSIBLE_TIME,
            "future" if future else "too_old",
            int(modules[i]),
            f"{section.record_type.name} of module {int(modules[i])} dated "
            f"{_at(int(ts[i]))}, {f'after {_at(high)}' if future else f'before {_at(low)}'}",
        )


def named_modules(columns: Columns) -> np.ndarray:
    """The module of every record (a RAW_TELEGRAM received by the concentrator's own
    receiver names none)."""
    parts = [
        modules[modules != OWN_RECEIVER]
        if section.record_type is RecordType.RAW_TELEGRAM
        else modules
        for section, modules, _ in columns
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def _missing(registered: np.ndarray, modules: np.ndarray) -> np.ndarray:
    """The entries of ``modules`` not in the sorted array ``registered``."""
    if not registered.size:
        return modules
    found = registered[np.searchsorted(registered, modules).clip(max=registered.size - 1)]
    return modules[found != modules]


class ModuleRegistry:
    """The radio modules registered to each building, read from ``radio_modules``.

    A building's modules are reused for ``cache_s`` seconds; a module missing from them
    reloads them (a module registered a moment ago), at most once per ``MISS_RELOAD_S``, so
    a concentrator sending a foreign module in every frame costs one query a second. They
    are kept as a sorted array: one ``searchsorted`` checks a whole batch."""

    def __init__(self, cache_s: float) -> None:
        self._cache_s = cache_s
        self._cache: dict[int, tuple[float, np.ndarray]] = {}

    async def refresh(self, db: Fetcher, building_ids: Iterable[int]) -> None:
        """Reload, in one query, those of the buildings whose modules are older than the
        cache allows (a batch of uploads from many buildings then costs one query, not
        one a building)."""
        now = time.monotonic()
        stale = sorted(
            {b for b in building_ids if now - self._cache.get(b, (-np.inf,))[0] >= self._cache_s}
        )
        if stale:
            await self._load(db, stale, now)

    async def _load(self, db: Fetcher, building_ids: list[int], now: float) -> None:
        """Read the buildings' registered modules into the cache, stamped ``now``."""
        found = await world.module_serials_of(db, building_ids)
        for building_id in building_ids:
            serials = found.get(building_id, frozenset())
            self._cache[building_id] = (now, np.array(sorted(serials), dtype=np.int64))

    async def foreign(self, db: Fetcher, building_id: int, modules: np.ndarray) -> list[int]:
        """The distinct modules among ``modules`` not registered to ``building_id``."""
        now = time.monotonic()
        loaded_at, registered = self._cache.get(building_id, (-np.inf, np.empty(0, np.int64)))
        missing = _missing(registered, modules)
        age = now - loaded_at
        if age >= self._cache_s or (missing.size and age >= MISS_RELOAD_S):
            await self._load(db, [building_id], now)
            missing = _missing(self._cache[building_id][1], modules)
        return np.unique(missing).tolist()


class UploadGate:
    """Both checks of one UPLOAD, for ingest and for the persister."""

    def __init__(self, settings: CommonSettings, module_cache_s: float) -> None:
        self._settings = settings
        self._registry = ModuleRegistry(module_cache_s)

    async def prepare(self, db: Fetcher, building_ids: Iterable[int]) -> None:
        """Load the registered modules of many buildings at once, before checking a batch
        of their uploads one by one."""
        await self._registry.refresh(db, building_ids)

    async def check(self, db: Fetcher, building_id: int, sections: Sequence[Section]) -> None:
        """Raise :class:`RefusedError` if any record of ``sections`` is implausible."""
        columns = record_columns(sections)
        check_times(columns, *self._settings.readings_window(datetime.now(UTC)))
        foreign = await self._registry.foreign(db, building_id, named_modules(columns))
        if foreign:
            raise RefusedError(
                NackReason.UNREGISTERED_MODULE,
                "unregistered_module",
                foreign[0],
                f"module(s) {', '.join(map(str, foreign[:5]))} not registered to building "
                f"{building_id}",
            )

    async def refusal(
        self, db: Fetcher, serial: int, seq: int, building_id: int, sections: Sequence[Section]
    ) -> NackReason | None:
        """Ingest's verdict on one UPLOAD: None to accept it, else the NACK reason (logged
        with the concentrator and module, and counted)."""
        try:
            await self.check(db, building_id, sections)
        except RefusedError as exc:
            ERRORS.labels(exc.reason.name.lower()).inc()
            REFUSED.labels(exc.check).inc()
            log.warning(
                "upload refused",
                serial=serial,
                seq=seq,
                building_id=building_id,
                module=exc.module,
                check=exc.check,
                error=exc.detail,
            )
            return exc.reason
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            ERRORS.labels("unavailable").inc()
            log.warning("module registry unavailable", serial=serial, seq=seq, error=repr(exc))
            return NackReason.UNAVAILABLE
        return None
