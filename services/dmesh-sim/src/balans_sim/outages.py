"""Simulated GPRS outages of the concentrators' uplink, drawn from the seed.

An outage ``[start, end)`` (hour boundaries) keeps the concentrator offline: the batches it
would upload at those boundaries (readings with ``start <= ts < end``) wait in the reference
client's buffer and are resent, with their original sequence numbers, when the link is back
at ``end``. Outages change when readings arrive, never what they are, so they are not part
of the physics (:mod:`balans_sim.faults`); they are ground-truth records of kind
``uplink_outage`` all the same.
"""

from __future__ import annotations

import numpy as np

from balans_sim.climate import hour_index, hour_start
from balans_sim.faults import FaultRecord, Where


def schedule_outages(
    *,
    building: str,
    concentrator_serial: int,
    seed: int,
    building_index: int,
    start_hour: int,
    hours: int,
    per_week: float,
    mean_hours: float,
) -> list[FaultRecord]:
    """The concentrator's outages over ``hours`` from ``start_hour``: Poisson in number,
    uniform in start, exponential in length (at least one hour), never overlapping."""
    if per_week <= 0 or hours <= 0:
        return []
    rng = np.random.default_rng([seed, building_index, 13, start_hour])
    count = int(rng.poisson(per_week * hours / 168.0))
    firsts = np.sort(start_hour + rng.integers(0, hours, count))
    lengths = np.maximum(np.rint(rng.exponential(mean_hours, count)), 1).astype(np.int64)
    records: list[FaultRecord] = []
    free_from = start_hour
    for first, length in zip(firsts.tolist(), lengths.tolist(), strict=True):
        first = max(first, free_from)
        last = min(first + length, start_hour + hours)
        if last <= first:
            continue
        free_from = last + 1
        records.append(
            FaultRecord(
                kind="uplink_outage",
                building=building,
                start=hour_start(first),
                end=hour_start(last),
                where=Where(),
                params={"concentrator_serial": concentrator_serial, "hours": last - first},
                seed=seed,
            )
        )
    return records


def uplink_down(outages: list[FaultRecord], boundary_hour: int) -> bool:
    """Whether the uplink is down at the hour boundary ``boundary_hour`` (hour index of
    the boundary, i.e. a reading's ``ts``)."""
    return any(hour_index(o.start) <= boundary_hour < hour_index(o.end or o.start) for o in outages)
