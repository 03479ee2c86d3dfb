"""``make bench-billing``: bill the reference building (100 accounts) for one month.

Data: the deck's reference block (layout 1c, a quarter of the flats with water, gas and
electricity meters), demo tariffs, a month of hourly heat per flat and hourly consumption
per meter. The baseline measured in the same run is the consumption read alone (the
query billing cannot avoid); the ratios show what pricing, comparing and writing cost on
top of it. Each figure is the median of ``REPEATS`` runs.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path

import asyncpg

from balans_billing import storage
from balans_billing.demo import seed_demo_tariffs
from balans_billing.invoicing import bill_building
from balans_billing.periods import month_bounds
from balans_db import migrate
from balans_db.queries import allocation
from balans_db.secrets import KeyVault
from balans_db.topology import reference_building, write_building
from balans_devstack.stack import DevStack, bench_durable

REPEATS = 5
MONTH = (2026, 1)


async def _load(conn: asyncpg.Connection) -> tuple[int, int]:
    """Write the building and a month of hourly data; return (building id, rows)."""
    building_id = await write_building(conn, reference_building("1c"), KeyVault())
    if building_id is None:
        raise RuntimeError("the reference building exists already")
    await seed_demo_tariffs(conn, date(2025, 7, 1))
    start, end = month_bounds(*MONTH, "Europe/Chisinau")
    hours = [start + timedelta(hours=h) for h in range(int((end - start).total_seconds() // 3600))]
    flats = [
        r["id"]
        for r in await conn.fetch("select id from flats where building_id = $1", building_id)
    ]
    heat = [(building_id, f, h, 1.5, 0.2, 1.7, "bench") for f in flats for h in hours]
    await conn.copy_records_to_table(
        "heat_allocation",
        records=heat,
        columns=[
            "building_id",
            "flat_id",
            "hour",
            "measured_kwh",
            "common_kwh",
            "total_kwh",
            "method",
        ],
    )
    meters = await conn.fetch(
        """select id, unit from meters
           where building_id = $1 and role = 'flat' and utility <> 'heat'""",
        building_id,
    )
    used = [(m["id"], h, 0.01, m["unit"]) for m in meters for h in hours]
    await conn.copy_records_to_table(
        "meter_consumption", records=used, columns=["meter_id", "hour", "value", "unit"]
    )
    return building_id, len(heat) + len(used)


async def _median(action: Callable[[], Awaitable[object]]) -> float:
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        await action()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


async def _bench(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        building_id, rows = await _load(conn)
        start, end = month_bounds(*MONTH, "Europe/Chisinau")
        accounts = len(await storage.accounts_of(conn, building_id))

        baseline = await _median(lambda: allocation.flat_consumption(conn, building_id, start, end))
        began = time.perf_counter()
        issued = await bill_building(conn, building_id, start, end)
        first = time.perf_counter() - began
        rerun = await _median(lambda: bill_building(conn, building_id, start, end))
        late_flat = await conn.fetchval(
            "select min(id) from flats where building_id = $1", building_id
        )

        async def correct() -> None:
            await conn.execute(
                """update heat_allocation set total_kwh = total_kwh + 1163
                   where flat_id = $1 and hour = $2""",
                late_flat,
                start,
            )
            written = await bill_building(conn, building_id, start, end)
            if len(written) != 1:
                raise RuntimeError(f"expected one correction, got {len(written)}")

        correction = await _median(correct)
    finally:
        await conn.close()
    print(f"reference building: {accounts} accounts, {rows} hourly rows, {len(issued)} invoices")
    print(f"baseline  consumption read        {baseline * 1000:8.1f} ms")
    for label, seconds in (
        ("first run (issue all invoices)", first),
        ("rerun, nothing changed", rerun),
        ("late data -> 1 correction", correction),
    ):
        print(
            f"billing   {label:<31} {seconds * 1000:8.1f} ms  {accounts / seconds:8.0f} accounts/s"
            f"  ratio {seconds / baseline:5.2f}x baseline"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, DevStack(Path(tmp), durable=bench_durable()) as urls:
        migrate.upgrade(urls.database_url)
        asyncio.run(_bench(urls.database_url))


if __name__ == "__main__":
    main()
