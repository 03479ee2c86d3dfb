"""Bulk import benchmark (`make bench-import`).

A generated city of BENCH_IMPORT_BUILDINGS (1 000) buildings of 60 flats, the five piping
layouts in turn (about 106 meters each, 106 000 in all), as one world document (JSON,
written to a file first), imported into an empty migrated database the way
``balans import`` does it: parse, check, compare with what is stored, write. Then the
same file again, which must change nothing.

Baseline in the same run: the rows the import stored, read back and written with a raw
``COPY`` into empty copies of the world tables (no checks, no key lookups, ids given).

The last line: ``import buildings=<N> meters=<M> seconds=<S> meters_per_s=<R>
reimport_seconds=<S2>``.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from pathlib import Path

import asyncpg

from balans_db import migrate
from balans_db.provisioning.importer import import_document
from balans_db.provisioning.validation import parse_document
from balans_db.secrets import KeyVault
from balans_db.tables.world import LAYOUTS
from balans_db.topology import SiteSpec, city_document, regular_building
from balans_devstack.stack import DevStack

BUILDINGS = int(os.environ.get("BENCH_IMPORT_BUILDINGS", "1000"))
WORLD_TABLES = (
    "sites",
    "buildings",
    "entrances",
    "risers",
    "flats",
    "radiators",
    "accounts",
    "concentrators",
    "radio_modules",
    "meters",
    "channels",
    "sensor_pairs",
)


def city_file(directory: Path) -> Path:
    sites = [
        SiteSpec(f"district-{d}", f"District {d}", f"Street {d}", 47.0 + d / 100, 28.8)
        for d in range(10)
    ]
    specs = [
        regular_building(
            code=f"b{i:04d}",
            name=f"Block {i}",
            address=f"str. Bench {i}",
            site=sites[i % len(sites)],
            layout=LAYOUTS[i % len(LAYOUTS)],
            floors=5,
            flats_per_floor=(4, 4, 4),
            risers_per_entrance=(7, 7, 6),
            index=i + 1,
        )
        for i in range(BUILDINGS)
    ]
    path = directory / "city.json"
    path.write_text(json.dumps(city_document(specs)))
    return path


async def timed_import(url: str, path: Path) -> tuple[float, int]:
    """Seconds to parse, check and import the file, and the rows it wrote."""
    started = time.perf_counter()
    doc = parse_document(await asyncio.to_thread(path.read_bytes))
    conn = await asyncpg.connect(url)
    try:
        report = await import_document(conn, doc, KeyVault())
    finally:
        await conn.close()
    rows = sum(sum(c.values()) for c in report.changes.counts().values())
    return time.perf_counter() - started, rows


async def baseline_copy(url: str) -> tuple[float, int]:
    """Seconds to COPY every stored world row into empty copies of the tables."""
    conn = await asyncpg.connect(url)
    try:
        data = {t: await conn.fetch(f"select * from {t}") for t in WORLD_TABLES}
        for t in WORLD_TABLES:
            await conn.execute(f"create table copy_{t} (like {t} including defaults)")
        started = time.perf_counter()
        async with conn.transaction():
            for t, records in data.items():
                await conn.copy_records_to_table(
                    f"copy_{t}",
                    records=[tuple(r) for r in records],
                    columns=list(records[0].keys()),
                )
        return time.perf_counter() - started, sum(len(r) for r in data.values())
    finally:
        await conn.close()


async def bench(url: str, path: Path) -> None:
    seconds, rows = await timed_import(url, path)
    reimport, changed = await timed_import(url, path)
    assert changed == 0, f"re-import changed {changed} rows"
    conn = await asyncpg.connect(url)
    try:
        buildings = await conn.fetchval("select count(*) from buildings")
        meters = await conn.fetchval("select count(*) from meters")
    finally:
        await conn.close()
    copy_s, copy_rows = await baseline_copy(url)
    size_mb = (await asyncio.to_thread(path.stat)).st_size / 1e6
    print(f"import document_mb={size_mb:.1f} rows={rows}")
    print(
        f"import baseline_copy_seconds={copy_s:.2f} copy_rows={copy_rows} "
        f"ratio={seconds / copy_s:.1f}"
    )
    print(
        f"import buildings={buildings} meters={meters} seconds={seconds:.2f} "
        f"meters_per_s={meters / seconds:.0f} reimport_seconds={reimport:.2f}"
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as data:
        path = city_file(Path(data))
        with DevStack(str(Path(data) / "stack")) as urls:
            migrate.upgrade(urls.database_url)
            asyncio.run(bench(urls.database_url, path))


if __name__ == "__main__":
    main()
