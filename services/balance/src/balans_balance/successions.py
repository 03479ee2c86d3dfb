"""Meters that followed one another on a module input (a meter exchange) are one meter
for the analysis: the one in service last, with its predecessors' consumption before
the swap. Without this the old meter would fall silent at the swap (a silence alert, or
its usual level filled in and counted twice next to its successor) and the new one
would appear from nowhere (docs/provisioning.md, "Meter exchange")."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def successors(channels: Iterable[Any]) -> dict[int, int]:
    """meter id -> the meter last on the same module input, for every meter that was
    replaced (rows: meter_id, module_serial, input, valid_from)."""
    chains: dict[tuple[int, int], list[Any]] = {}
    for r in channels:
        chains.setdefault((r["module_serial"], r["input"]), []).append(r)
    out: dict[int, int] = {}
    for rows in chains.values():
        if len(rows) < 2:
            continue
        ordered = sorted(rows, key=lambda r: (r["valid_from"] is not None, r["valid_from"]))
        last = ordered[-1]["meter_id"]
        out.update({r["meter_id"]: last for r in ordered[:-1]})
    return out


def fold(consumption: np.ndarray, meter_index: dict[int, int], successor: dict[int, int]) -> None:
    """Add each replaced meter's hourly consumption into its successor's row (in place;
    an hour stays NaN only if neither has it) and drop the replaced meter from
    ``meter_index``."""
    for old, new in successor.items():
        if old not in meter_index or new not in meter_index:
            continue
        a, b = consumption[meter_index[old]], consumption[meter_index[new]]
        consumption[meter_index[new]] = np.where(
            np.isnan(a) & np.isnan(b), np.nan, np.nan_to_num(a) + np.nan_to_num(b)
        )
        del meter_index[old]


def members(ids: Sequence[int], successor: dict[int, int]) -> tuple[int, ...]:
    """Group members with replaced meters named by their successors, once each."""
    return tuple(dict.fromkeys(successor.get(m, m) for m in ids))
