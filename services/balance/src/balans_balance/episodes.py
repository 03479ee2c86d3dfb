"""Turning an hourly anomaly mask into episodes: sustained runs that open and close alerts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Episode:
    start: int  # first anomalous hour (index)
    confirmed: int  # hour at which the run became long enough to alert
    end: int  # last anomalous hour (index)
    active: bool  # still anomalous at the end of the series (not yet quiet long enough)


def find_episodes(
    mask: npt.NDArray[np.bool_], *, min_run: int, quiet_to_close: int, max_gap: int = 2
) -> list[Episode]:
    """Runs of ``mask`` (gaps up to ``max_gap`` hours bridged) of at least ``min_run`` hours.

    An episode ends after ``quiet_to_close`` normal hours; one that has not had them by
    the end of the series is ``active``.
    """
    episodes: list[Episode] = []
    n = mask.size
    i = 0
    while i < n:
        if not mask[i]:
            i += 1
            continue
        start = last = i
        count = 0
        confirmed = -1
        j = i
        while j < n and j - last <= max(max_gap, quiet_to_close):
            if mask[j]:
                if j - last > max_gap and confirmed < 0:
                    break  # a gap too long before the run was confirmed: start again
                last = j
                count += 1
                if confirmed < 0 and count >= min_run:
                    confirmed = j
            j += 1
        if confirmed >= 0:
            episodes.append(Episode(start, confirmed, last, active=n - 1 - last < quiet_to_close))
        i = last + 1 if confirmed < 0 else j
    return episodes


def runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The runs of True in ``mask``: (first, one past the last) positions, in order."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
