"""What an analysis of each building costs this process: the weights of the event
partitions' split (``balans_core.partitions``), so that two processes finish an hour together.

Neither a building's groups nor its meters predict its analysis well: on the scale-out
benchmark's 20 buildings a linear fit of the measured seconds on meters and groups explains
half of their spread (R² 0.48), and a split with equal groups left one process 58 % of the
work. So each incremental analysis's CPU seconds are kept (a moving average per building:
CPU rather than wall time, which other work on the host would blur); the buildings this
process has not analysed are weighed by their groups at the average cost of a group of
those it has (by groups alone when it has analysed none yet: a fresh start).
"""

from __future__ import annotations

from collections.abc import Mapping

SMOOTHING = 0.3
"""Each new analysis's share of a building's moving average."""


class AnalysisCosts:
    """Per building, the moving average of its incremental analyses' CPU seconds."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}

    def note(self, building_id: int, seconds: float) -> None:
        """One incremental analysis took ``seconds`` of CPU (a full read of the window is
        not the hourly cost and is not noted)."""
        known = self.seconds.get(building_id)
        self.seconds[building_id] = (
            seconds if known is None else known + SMOOTHING * (seconds - known)
        )

    def weights(self, groups: Mapping[int, int]) -> dict[int, float]:
        """building -> its weight: the seconds measured here, else its groups at the
        measured buildings' seconds per group (``groups``: every building's groups)."""
        measured = {b: s for b, s in self.seconds.items() if b in groups}
        known_groups = sum(groups[b] for b in measured)
        per_group = sum(measured.values()) / known_groups if known_groups else 1.0
        return {b: measured.get(b, n * per_group) for b, n in groups.items()}
