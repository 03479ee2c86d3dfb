"""What each building's work costs the process that does it: the weights of the event
partitions' split (:mod:`balans_core.partitions`), so that a stage's processes finish an
hour together.

A building's size predicts its work poorly: on the scale-out benchmark's 20 buildings a
linear fit of balance's analysis seconds on meters and groups explains half of their spread
(R² 0.48), and a split of balance by groups left one process 58 % of the work; allocation's
split by meters left one process 63 % of a backlog's CPU at 40 buildings. So a service notes
the CPU seconds each building's work took (a moving average per building: CPU rather than
wall time, which other work on the host would blur), and weighs the buildings it has not
measured by their size (balance: groups, allocation: meters) at the measured buildings'
seconds per unit of size (by size alone when it has measured none yet: a fresh start).

Which clock: ``time.process_time()`` counts every thread of the process, ``time.thread_time()``
only the calling one. A service whose work runs on the event loop's thread alone (balance)
takes the thread's, so a metrics scrape answered by another thread meanwhile is not the
building's; one whose kernels run parallel loops on worker threads (allocation's numba
kernels) takes the process's, or a large recomputation would look cheap.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SMOOTHING = 0.3
"""Each new measurement's share of a building's moving average."""


class BuildingCosts:
    """Per building, the moving average of the CPU seconds its work took in this process."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def note(self, building_id: int, seconds: float) -> None:
        """The building's work (one analysis, one batch's part) took ``seconds`` of CPU."""
        known = self.seconds.get(building_id)
        self.seconds[building_id] = (
            seconds if known is None else known + SMOOTHING * (seconds - known)
        )

    def note_shared(self, seconds: float, parts: Mapping[int, float]) -> None:
        """Work done for several buildings together took ``seconds`` of CPU: each building
        is noted its part of them in proportion to ``parts`` (building -> what it did, in
        any unit; equal parts when they sum to nothing)."""
        total = sum(parts.values())
        for building_id, part in parts.items():
            share = part / total if total > 0 else 1 / len(parts)
            self.note(building_id, seconds * share)

    def weights(self, sizes: Mapping[int, float]) -> dict[int, float]:
        """building -> its weight: the seconds measured here, else its size at the measured
        buildings' seconds per unit of size (``sizes``: every building's)."""
        measured = {b: s for b, s in self.seconds.items() if b in sizes}
        known_size = sum(sizes[b] for b in measured)
        per_unit = sum(measured.values()) / known_size if known_size else 1.0
        return {b: measured.get(b, n * per_unit) for b, n in sizes.items()}


@dataclass
class _Open:
    weight: float
    seconds: float = 0.0


class CpuLedger:
    """The process's CPU seconds divided between pieces of work that overlap (allocation's
    batches computed at once, ``BALANS_ALLOCATION_BATCH_WORKERS``). ``time.process_time()``
    taken around each piece would count the CPU of every piece open meanwhile in each of
    them (two batches at once: 1.08 s noted for 0.58 s used), and the partitions' weights
    with it. Here, between two moments at which a piece opens or closes, the CPU used is
    divided among the pieces then open in proportion to their weights (e.g. their
    buildings), so every second is noted once; a piece alone gets all of it, as the clock
    taken around it would."""

    def __init__(self, clock: Callable[[], float] = time.process_time) -> None:
        self._clock = clock
        self._last = clock()
        self._open: dict[int, _Open] = {}
        self._tokens = itertools.count()

    def _settle(self) -> None:
        now = self._clock()
        total = sum(o.weight for o in self._open.values())
        for o in self._open.values():
            o.seconds += (now - self._last) * (
                o.weight / total if total > 0 else 1 / len(self._open)
            )
        self._last = now

    def open(self, weight: float = 1.0) -> int:
        """A piece of work begins; returns its token for :meth:`close`."""
        self._settle()
        token = next(self._tokens)
        self._open[token] = _Open(weight)
        return token

    def close(self, token: int) -> float:
        """The piece ends: its CPU seconds."""
        self._settle()
        return self._open.pop(token).seconds


def freeze_startup_heap() -> None:
    """Collect, then move every object alive now out of the garbage collector's reach
    (``gc.freeze``); call once the service has loaded what it keeps for its life (modules,
    compiled kernels, tables). A full collection traverses every tracked object: with numba
    and its kernels loaded, about 190 000 and 0.1 s of CPU, which would land on whichever
    building's work happens to trigger it, twice the cost of a 12-building batch. After the
    freeze it traverses only what came later."""
    gc.collect()
    gc.freeze()
