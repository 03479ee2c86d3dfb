"""A riser's hourly ΔT, worked out from its sensor pairs' readings as the analysis reads
them, is bit for bit the mean PostgreSQL gives (what a query of its own gave before)."""

from __future__ import annotations

import asyncpg
import numpy as np
import pytest

from balans_balance.loading import _riser_dt

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOURS = 500


async def test_riser_delta_t_is_the_databases_mean(conn: asyncpg.Connection) -> None:
    """Random readings in hundredths of a degree, 1-9 pairs a riser, ΔT of tens of
    degrees and of tenths (where the mean of 9 pairs is a fraction that PostgreSQL's
    numeric rounds before the double does: a plain float mean differs from it in some
    dozens of these hours), hours missing at random: every hour's mean equals
    ``avg(supply - return)::float8 / 100``, NaN where no pair reported; a riser without
    rows is left out."""
    rng = np.random.default_rng(5)
    rows = []
    for riser in range(12):
        # cooling water (1-9 pairs), or a single-pipe riser of 9 radiators with no flow
        spread, pairs = (4000, int(rng.integers(1, 10))) if riser % 2 else (10, 9)
        for pair in range(pairs):
            for hour in range(HOURS):
                if rng.random() < 0.8:
                    supply = int(rng.integers(3000, 9000))
                    dt = int(rng.integers(-spread, spread))
                    rows.append((riser, pair, hour, supply, supply - dt))
    await conn.execute(
        """create temp table readings (riser int, pair int, position_ int,
                                       supply_centi int, return_centi int)"""
    )
    await conn.copy_records_to_table("readings", records=rows)
    # each pair's readings as the analysis reads them: °C, x / 100
    pairs = [
        (r["riser"], r)
        for r in await conn.fetch(
            """select riser, array_agg(position_) positions,
                      array_agg(supply_centi::float8 / 100) supply,
                      array_agg(return_centi::float8 / 100) return_
               from readings group by riser, pair"""
        )
    ]
    want = {}
    for r in await conn.fetch(
        """select riser, array_agg(position_) positions, array_agg(dt) dts
           from (select riser, position_, avg(supply_centi - return_centi)::float8 / 100 dt
                 from readings group by riser, position_) per_hour
           group by riser"""
    ):
        want[r["riser"]] = np.full(HOURS, np.nan)
        want[r["riser"]][r["positions"]] = r["dts"]
    got = _riser_dt(pairs, HOURS)
    assert got.keys() == want.keys()
    for riser, series in want.items():
        assert np.array_equal(got[riser], series, equal_nan=True), riser
    assert any(np.isnan(s).any() for s in want.values()), "no hour missing: nothing compared"
    assert _riser_dt([], HOURS) == {}
