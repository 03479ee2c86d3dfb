"""Each channel's newest registers, read once per batch, and what an event needs of them.

An event needs three things of every channel, each an index probe or more when asked
apart: its last register before the event's first hour (the anchor: a register stored
there changes the hours back to it), its newest register (completeness), and the registers
of the window to compute with the nearest one either side of it. In the steady state (one
new hour, the hours before it done) all of them are among the channel's last few
registers, so one backward index scan per channel, :data:`RECENT` rows, answers all three.
Where the rows read do not settle a question (more registers after the window's start
than were read: a catch-up or late data further back; a watermark far behind; a window
starting off the hour), the general queries answer it for that building, and a building
with a meter exchange (whose counts at the swap the general query places) always takes
them: every building gets exactly what those queries alone would give.

Registers stamped more than :data:`AHEAD` past the present hour are not read here nor by
the completeness query: ingest refuses any dated further ahead than its clock skew
(minutes), and one stored before it did once moved the watermark (docs/allocation.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from balans_allocation.building import Building
from balans_allocation.kernels import MISSING_REGISTER
from balans_db.queries import ingest

HOUR = timedelta(hours=1)
RECENT = 4  # registers read per channel: an hourly event needs the newest three
CATCH_UP = RECENT * timedelta(hours=1)
"""A building whose events reach this far past its watermark or first hour (a catch-up
after a pause, a backlog) needs more registers per channel than :data:`RECENT`: its rows
would not settle anything, so they are not read (:func:`worth_reading`)."""
AHEAD = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_HOUR_US = HOUR // _US


def _us(t: datetime) -> int:
    return (t - _EPOCH) // _US


def _time(us: int) -> datetime:
    return _EPOCH + us * _US


@dataclass(frozen=True)
class Channel:
    """One meter's channel: its newest registers, newest first (stamps in microseconds
    since the epoch, whether each is on a whole hour, counts); ``complete`` when fewer
    than :data:`RECENT` were stored since the building's ``since``: then every one is here."""

    stamps: list[int]
    whole: list[bool]
    counts: list[int]
    complete: bool


@dataclass(frozen=True)
class Recent:
    """A building's channels' newest registers stamped from ``since`` (microseconds since
    the epoch), one per meter in the building's meter order."""

    since: int
    channels: tuple[Channel, ...]

    def anchor(self, before: datetime, floor: datetime) -> datetime | None:
        """The oldest of the channels' last registers in [floor, before), the floor for a
        channel without one (:func:`balans_allocation.allocator.earliest_anchors`); None
        where the rows read do not settle it."""
        b, f = _us(before), _us(floor)
        oldest = b
        for channel in self.channels:
            for us in channel.stamps:
                if us < b:  # the newest before ``before``: rows are a newest-first run
                    found = max(us, f)
                    break
            else:
                if not (channel.complete and f >= self.since):
                    return None
                found = f
            oldest = min(oldest, found)
        return _time(oldest) if self.channels else floor

    def latest(self, index: int, since: datetime) -> tuple[bool, datetime | None]:
        """(settled, the newest register of meter ``index`` at or after ``since``, None if
        there is none) for :func:`balans_allocation.allocator.complete_until`."""
        channel = self.channels[index]
        if channel.stamps:
            newest = channel.stamps[0]
            return True, _time(newest) if newest >= _us(since) else None
        return _us(since) >= self.since, None

    def window(self, start: datetime, boundaries: int, edge: int) -> np.ndarray | None:
        """int64 [meter, boundary] registers of the window, as
        :func:`balans_allocation.readings.load_register_windows` loads it (whole hours only:
        every one in the inner range, the nearest one either side within the edges); None
        where the rows read do not settle it."""
        t0 = _us(start)
        if t0 % _HOUR_US or t0 < self.since:
            return None
        a, b = t0 + edge * _HOUR_US, t0 + (boundaries - 1 - edge) * _HOUR_US
        t1 = t0 + (boundaries - 1) * _HOUR_US
        registers = np.full((len(self.channels), boundaries), MISSING_REGISTER, dtype=np.int64)
        for row, channel in enumerate(self.channels):
            rows = list(zip(channel.stamps, channel.whole, channel.counts, strict=True))
            for us, whole, count in rows:
                if us < a and whole:  # the nearest whole-hour register before the inner range
                    if us >= t0:
                        registers[row, (us - t0) // _HOUR_US] = count
                    break
            else:
                if not channel.complete:
                    return None
            after = None
            for us, whole, count in rows:
                if not whole or us < a:
                    continue
                if us <= b:
                    registers[row, (us - t0) // _HOUR_US] = count
                elif us <= t1:
                    after = (us, count)  # newest first: the last one kept is the nearest
            if after is not None:
                registers[row, (after[0] - t0) // _HOUR_US] = after[1]
        return registers


def worth_reading(first: datetime, mark: datetime | None, newest: datetime | None) -> bool:
    """Whether a building's newest registers can settle what its event needs: not when its
    events reach :data:`CATCH_UP` or more past the earlier of its first hour and its
    watermark (``newest``: the last hour its events stored; None: not known). A building
    left out takes the general queries, which give the same results."""
    if newest is None:
        return True
    start = first if mark is None else min(first, mark)
    return newest - start < CATCH_UP


async def load(
    conn: asyncpg.Connection,
    buildings: Sequence[Building],
    first: dict[int, datetime],
    lookaround: int,
) -> dict[int, Recent]:
    """The newest registers of every channel of the buildings without a meter exchange,
    from ``2 * lookaround`` hours before each building's ``first`` hour (the anchor's
    floor is ``lookaround`` before it, the window's edge as far again): one query."""
    plain = [
        b
        for b in buildings
        if all(
            m.valid_from is None
            and m.valid_to is None
            and m.count_at_start is None
            and m.count_at_end is None
            for m in b.meters
        )
    ]
    since = {b.id: first[b.id] - 2 * lookaround * HOUR for b in plain}
    channels = [(b.id, m.module_serial, m.input) for b in plain for m in b.meters]
    if not channels:
        return {}
    present = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rows = await ingest.recent_registers(
        conn,
        [c[0] for c in channels],
        [c[1] for c in channels],
        [c[2] for c in channels],
        list(since),
        list(since.values()),
        present + AHEAD,
        RECENT,
    )
    found = {r[0]: Channel(r[1], r[2], r[3], len(r[1]) < RECENT) for r in rows}
    empty = Channel([], [], [], True)
    out: dict[int, Recent] = {}
    index = 0
    for b in plain:
        n = len(b.meters)
        out[b.id] = Recent(_us(since[b.id]), tuple(found.get(index + k, empty) for k in range(n)))
        index += n
    return out
