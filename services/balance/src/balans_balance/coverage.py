"""Each group's metering coverage: the flats its balance meter serves against those its
members meter, and whether that is enough for its imbalance to mean anything.

A building's cold-water group where 10 of 40 flats have meters balances the building
meter mostly against unmetered use: its imbalance is the other 30 flats, not a fault,
and a band learned on it calls a permanent 95 % normal. Such a group is *incomplete*:
its series is still stored (shown as "10 of 40 flats metered"), but it raises no
imbalance alerts.

Flats served: a building group, the building's flats; an entrance group, the flats of
the entrances its members are in; a riser group, the flats with a radiator on the
balance meter's riser; branch and custom groups, the flats their members meter (their
coverage is what the operator made it). Flats metered: of those, the flats with a
member meter in service (a meter replaced in an exchange no longer counts), or with a
radiator on a member riser meter's riser."""

from __future__ import annotations

import asyncpg

from balans_db.queries import balance


async def store_coverage(
    conn: asyncpg.Connection, building_id: int, min_coverage: float, loss_target_share: float
) -> frozenset[int]:
    """Write every group's coverage and loss target; return the incomplete groups' ids."""
    rows = await balance.store_group_coverage(conn, building_id, min_coverage, loss_target_share)
    return frozenset(r["id"] for r in rows if not r["coverage_complete"])
