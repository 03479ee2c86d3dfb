"""Each building's analysis window kept between events, so an event reads only the hours
that arrived instead of the whole window (35 days of every series of the building).

A kept window is the building's world (:class:`~balans_balance.loading.BuildingWorld`)
and its hourly data. On an event for hours ``[hour_from, hour_to]`` the window moves on
to end at the newest hour known, the hours before ``hour_from`` that it still covers are
kept, and the rest is read. Every event reads the world again (a few small queries): if
it changed (a topology change, an operator's group edit) the window is read in full, as
it is when no window is kept (a restart, a building new to this process, one evicted by
the least-recently-used bound). An event whose first hour is earlier than the kept
window's end (allocation recomputed earlier hours after a late reading) re-reads from
that hour on.

Late rows that change no allocation figure (a module's status, a temperature that moved
no heat) bring no allocation event, but the persister announces every batch it stores
(``ReadingsStored``, the building and the hours of its rows, whatever their kind):
:meth:`BuildingStates.note_stored` marks the hours of such rows that the kept window
already holds, and the building's next turn reads them again, as it does a recomputed
hour. The kept window therefore holds what a full read would, and is never read in full
just in case.

What comes out is the same :class:`~balans_balance.loading.BuildingData` a full read
gives (each hour's values depend on that hour's rows alone), so the detectors run
unchanged on it.

The detectors judge the whole window, and their day blocks, fills and fits move with its
last hour, so none of their work carries over from one hour to the next. They therefore
run on a building's turn, not on every event (``analyse_every_hours``,
:meth:`BuildingStates.turn`): once in that many hours of data, on an hour spread by
building (so each hour analyses its share of the buildings), at once when no window is
kept (a restart, a building new to this process, a topology change) and when the turn
fell in a gap of the data. An event between turns touches nothing but the building's
kept state: it notes its hours, and the turn reads them all, so a changed world (an
operator's group edit) is seen on the turn. The analysis on the turn judges the window as
it is then, so its alerts are those of a full recomputation at that hour; what waiting
costs is time: an alert opens up to ``analyse_every_hours - 1`` hours later than it would
have. The analysis stores the imbalance series of every hour the turn read
(``Window.read_from`` on): see ``analysis.analyse_window``.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from weakref import WeakValueDictionary

import asyncpg

from balans_balance.loading import (
    HOUR,
    BuildingData,
    BuildingWorld,
    HourlyData,
    assemble,
    hour_range,
    load_hours,
    load_world,
)
from balans_balance.metrics import ANALYSES, WINDOW_READS, WINDOWS_KEPT

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class KeptWindow:
    """One building's window between events."""

    world: BuildingWorld
    hourly: HourlyData
    # the hours of the events since the last analysis (late rows' hours among them, up to
    # the window's end), read on the building's turn
    waiting: tuple[datetime, datetime] | None = None
    # the incomplete groups as the first analysis of this world stored their coverage
    # (None until then): the coverage depends on the world alone, which a full read
    # brings again whenever it may have changed
    incomplete: frozenset[int] | None = None

    @property
    def end(self) -> datetime:
        return self.hourly.hours[-1]


@dataclass(frozen=True)
class Window:
    """What an event analyses: the building's data and the window kept for the next."""

    data: BuildingData
    kept: KeptWindow
    read: str  # how it was read: incremental, late, or why in full
    read_from: datetime  # the first hour it read (the window's first when read in full)


def first_turn_from(hour: datetime, building_id: int, every: int) -> datetime:
    """The building's first turn at or after ``hour``: the hours whose count since 1970
    plus the building's id is a multiple of ``every`` (so each hour has a share of the
    buildings, not all of them at once)."""
    phase = (int((hour - EPOCH) / HOUR) + building_id) % every
    return hour + ((every - phase) % every) * HOUR


class BuildingStates:
    """The kept windows of the buildings this process analyses, at most ``capacity``
    (the least recently analysed are dropped first)."""

    def __init__(self, capacity: int, analyse_every_hours: int = 1) -> None:
        self.capacity = capacity
        self.analyse_every_hours = analyse_every_hours
        self._kept: OrderedDict[int, KeptWindow] = OrderedDict()
        self._locks: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()

    def __contains__(self, building_id: int) -> bool:
        return building_id in self._kept

    def lock(self, building_id: int) -> asyncio.Lock:
        """Held while a building is analysed: two workers of one process never move one
        window at the same time."""
        lock = self._locks.get(building_id)
        if lock is None:
            lock = self._locks[building_id] = asyncio.Lock()
        return lock

    def forget(self, building_id: int) -> None:
        """Drop a building's window (its next event reads it in full)."""
        self._kept.pop(building_id, None)
        WINDOWS_KEPT.set(len(self._kept))

    def forget_where(self, drop: Callable[[int], bool]) -> None:
        """Drop the windows of the buildings ``drop`` names (a partition given up)."""
        for building_id in [b for b in self._kept if drop(b)]:
            del self._kept[building_id]
        WINDOWS_KEPT.set(len(self._kept))

    async def window(
        self,
        conn: asyncpg.Connection,
        building_id: int,
        hour_from: datetime,
        hour_to: datetime,
        days: int,
    ) -> Window:
        """The window of ``days`` ending at the newest hour known (``hour_to``, or the kept
        window's end when the event is for earlier hours), with the hours from
        ``hour_from`` on (and those of the events that waited for this turn) read again."""
        world = await load_world(conn, building_id)
        kept = self._kept.get(building_id)
        if kept is not None and kept.waiting is not None:
            hour_from = min(hour_from, kept.waiting[0])
            hour_to = max(hour_to, kept.waiting[1])
            kept.waiting = None
        end = _hour(hour_to)
        if kept is not None and kept.end > end:
            end = kept.end
        hours = hour_range(end, days)
        changed = max(_hour(hour_from), hours[0])
        why = self._full_read_reason(kept, world, hours, changed)
        if kept is None or why:
            hourly = await load_hours(conn, world, hours)
            kept = KeptWindow(world, hourly)
            read, read_from = why or "missing", hours[0]
        else:
            first_new = min(changed, kept.end + HOUR)
            read, read_from = ("late" if first_new <= kept.end else "incremental"), first_new
            keep_from = int((hours[0] - kept.hourly.hours[0]) / HOUR)
            keep_to = int((first_new - kept.hourly.hours[0]) / HOUR)
            new = await load_hours(conn, world, hours[keep_to - keep_from :])
            kept.hourly = kept.hourly.between(keep_from, keep_to).joined(new)
        self._keep(building_id, kept)
        WINDOW_READS.labels(read).inc()
        return Window(assemble(world, kept.hourly), kept, read, read_from)

    def turn(self, building_id: int, hour_from: datetime, hour_to: datetime) -> str:
        """Why the building is analysed on an event for hours ``[hour_from, hour_to]``
        (its turn, or why before it), or "" when the event waits for the turn: its hours
        are noted for the turn to read, and nothing else is done (no read, no analysis)."""
        kept = self._kept.get(building_id)
        why = self._turn_reason(kept, _hour(hour_from), _hour(hour_to))
        if kept is not None and not why:
            first, last = _hour(hour_from), _hour(hour_to)
            if kept.waiting is not None:
                first, last = min(first, kept.waiting[0]), max(last, kept.waiting[1])
            kept.waiting = (first, last)
            self._kept.move_to_end(building_id)
        ANALYSES.labels(why or "deferred").inc()
        return why

    def note_stored(self, building_id: int, hour_from: datetime) -> str:
        """Rows of the building were stored for the hours from ``hour_from`` on (any kind:
        registers, statuses, temperatures). If the kept window already holds some of those
        hours, its next turn reads them again ("late"); the hours after its end are read on
        the turn anyway ("ahead"), and a building without a kept window is read in full
        ("unkept")."""
        kept = self._kept.get(building_id)
        first = _hour(hour_from)
        if kept is None:
            return "unkept"
        if first > kept.end:
            return "ahead"
        last = kept.end if kept.waiting is None else kept.waiting[1]
        kept.waiting = (first if kept.waiting is None else min(first, kept.waiting[0]), last)
        return "late"

    def _turn_reason(self, kept: KeptWindow | None, hour_from: datetime, hour_to: datetime) -> str:
        every = self.analyse_every_hours
        if every <= 1:
            return "every_hour"
        if kept is None:
            return "missing"
        end = max(hour_to, kept.end, kept.waiting[1] if kept.waiting else hour_to)
        if end - kept.end >= every * HOUR:
            return "overdue"  # the turn fell in a gap of the data
        if end > kept.end and first_turn_from(end, kept.world.building_id, every) == end:
            return "turn"
        return ""

    def _full_read_reason(
        self,
        kept: KeptWindow | None,
        world: BuildingWorld,
        hours: list[datetime],
        changed: datetime,
    ) -> str:
        """Why the window must be read in full ("" when it need not)."""
        if kept is None:
            return "missing"
        if kept.world != world:
            return "world_changed"
        if kept.hourly.hours[0] > hours[0]:
            return "window_longer"  # the setting grew
        if min(changed, kept.end + HOUR) <= hours[0]:
            return "nothing_to_keep"  # a gap longer than the window, or all of it changed
        return ""

    def _keep(self, building_id: int, kept: KeptWindow) -> None:
        self._kept[building_id] = kept
        self._kept.move_to_end(building_id)
        while len(self._kept) > self.capacity:
            self._kept.popitem(last=False)
        WINDOWS_KEPT.set(len(self._kept))


def _hour(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
