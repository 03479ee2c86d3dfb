"""Clogged risers: a riser whose flow falls out of line with comparable risers.

Each riser's share of the building's riser flow (24-hour sums, so the day's rhythm
cancels) is judged against its own learned band. Weather and weekends move every
riser together and leave the shares alone; a clog (dirt, a throttled valve) lowers one
share for good. A riser *meter* that under-reads (magnet, stuck) lowers the share too,
but its missing flow then shows in the building's balance, where the group detector
names the meter; the analysis drops a clog finding for a riser whose meter is blamed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from balans_balance.bands import learn_band
from balans_balance.episodes import Episode, find_episodes

FloatArray = npt.NDArray[np.float64]


def clogged_risers(
    flows: FloatArray,
    *,
    smooth_hours: int = 24,
    window: int = 14 * 24,
    k: float = 5.0,
    min_scale: float = 0.05,
    min_run: int = 12,
) -> list[tuple[int, Episode]]:
    """(riser row, episode) for each riser whose relative share fell below its band.

    ``min_scale`` is relative (a share is judged in proportion to its own level).
    """
    if flows.shape[0] < 3:
        return []
    f = np.nan_to_num(flows)
    c = np.concatenate([np.zeros((f.shape[0], 1)), np.cumsum(f, axis=1)], axis=1)
    sums = c[:, smooth_hours:] - c[:, :-smooth_hours]
    total = sums.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, sums / total, np.nan)
    pad = np.full((f.shape[0], smooth_hours - 1), np.nan)
    share = np.concatenate([pad, share], axis=1)
    found: list[tuple[int, Episode]] = []
    classes = np.zeros(f.shape[1], dtype=np.int_)
    for i in range(f.shape[0]):
        level = np.nanmedian(share[i])
        if not np.isfinite(level) or level <= 0:
            continue
        relative = share[i] / level
        band = learn_band(relative, classes, window=window, k=k, min_scale=min_scale)
        low = ~np.isnan(band.low) & (relative < band.low)
        found.extend((i, ep) for ep in find_episodes(low, min_run=min_run, quiet_to_close=12))
    return found
