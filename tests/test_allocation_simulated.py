"""allocation on the simulator's city: per-flat heat against the simulator's ground truth."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from balans_allocation.allocator import on_readings_stored
from balans_allocation.cli import register
from balans_db.secrets import KeyVault
from balans_db.topology import demo_city
from balans_sim.climate import hour_index
from balans_sim.engine import CitySim
from balans_sim.pgwriter import write_chunks
from balans_sim.world import write_city

H0 = datetime(2026, 1, 12, tzinfo=UTC)
HOURS = 36
SEED = 11


@pytest.fixture(scope="module")
async def simulated(database_url: str):
    """The demo city, 36 simulated winter hours stored, allocation run once per building."""
    city = demo_city()
    conn = await asyncpg.connect(database_url)
    await write_city(conn, city, KeyVault(), SEED)
    chunks = CitySim(city, SEED, hour_index(H0)).advance(HOURS)
    await write_chunks(conn, chunks)
    ids = {}
    for spec in city:
        ids[spec.layout] = await conn.fetchval(
            "select id from buildings where code = $1", spec.code
        )
        await on_readings_stored(conn, ids[spec.layout], H0, timedelta(hours=3), 48)
    yield conn, ids, {spec.layout: chunk for spec, chunk in zip(city, chunks, strict=True)}
    await conn.close()


async def _per_flat(
    conn: asyncpg.Connection, building_id: int, column: str
) -> tuple[np.ndarray, slice]:
    """Per-flat sums of a column over the computed hours, and those hours as truth indices."""
    rows = await conn.fetch(
        f"""select flat_id, sum({column}) as s, min(hour) as first, count(*) as n
            from heat_allocation where building_id = $1 group by flat_id order by flat_id""",
        building_id,
    )
    ((first, n),) = {(r["first"], r["n"]) for r in rows}
    start = int((first - H0) / timedelta(hours=1))
    return np.array([r["s"] for r in rows]), slice(start, start + n)


# 1a: 1 kWh pulses; 1b: 1 l pulses and a DTI2 pair over the flat's 20 K; 2a: a pair over
# each radiator's 1-3 K, where the pair's fixed error (up to 0.12 K) alone is several percent.
TOLERANCE = {"1a": 0.02, "1b": 0.02, "2a": 0.06}


@pytest.mark.parametrize("layout", ["1a", "1b", "2a"])
async def test_measured_heat_matches_truth(simulated, layout: str) -> None:
    """Where flats are metered, their measured heat over the run matches the true heat,
    within the instruments' error and without bias."""
    conn, ids, chunks = simulated
    measured, hours = await _per_flat(conn, ids[layout], "measured_kwh")
    truth = chunks[layout].truth.flat_kwh[hours].sum(axis=0)
    np.testing.assert_allclose(measured, truth, rtol=TOLERANCE[layout])
    assert (measured / truth).mean() == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("layout", ["1a", "1b", "1c", "2a", "2b"])
async def test_totals_equal_building_meter(simulated, layout: str) -> None:
    """Σ flats' totals equals the building meter over the run, for every layout."""
    conn, ids, chunks = simulated
    total, hours = await _per_flat(conn, ids[layout], "total_kwh")
    building = await conn.fetchval(
        "select sum(building_kwh) from allocation_building_hours where building_id = $1",
        ids[layout],
    )
    assert total.sum() == pytest.approx(building, rel=1e-9)
    assert building == pytest.approx(chunks[layout].truth.building_kwh[hours].sum(), rel=0.02)


def test_explain_command_prints_the_trail(simulated, database_url: str, monkeypatch) -> None:
    """`balans heat explain` prints a flat's trail as JSON whose hours add up to its total."""
    monkeypatch.setenv("BALANS_DATABASE_URL", database_url)
    app = typer.Typer()
    register(app)

    @app.callback()
    def root() -> None:
        """Stand-in for the balans root command."""

    _, ids, _ = simulated
    flat_id = asyncio.run(_first_flat(database_url, ids["1b"]))
    args = ["heat", "explain", "--flat", str(flat_id), "--from", "2026-01-12T00:00:00",
            "--to", "2026-01-13T00:00:00"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    trail = json.loads(result.output)
    assert len(trail["hours"]) == 23  # the first hour has no register at its start
    assert trail["total_kwh"] == pytest.approx(sum(h["total_kwh"] for h in trail["hours"]))
    assert trail["layout"] == "1b"


async def _first_flat(database_url: str, building_id: int) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("select min(id) from flats where building_id = $1", building_id)
    finally:
        await conn.close()
