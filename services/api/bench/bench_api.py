"""``make bench-api``: 50 concurrent clients against the api over hourly data.

Builds (once, kept in ``.balans/bench-api``) a city of reference buildings with at least
BENCH_API_METERS meters and BENCH_API_DAYS days of hourly consumption and allocated heat,
starts the api as its own process, then for BENCH_API_SECONDS runs 50 clients: 80 %
consumer month profiles (a month of hours, own flat, consumer token) and 20 % operator
building overviews. Baseline in the same run: ``GET /auth/me`` (auth + one indexed row).
Last line: ``api p50_ms=<A> p99_ms=<B> rps=<C>``.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from synthetic import fill_building

from balans_api.users import create_user
from balans_db import migrate
from balans_db.secrets import KeyVault
from balans_db.topology import reference_building, write_building
from balans_devstack.processes import free_port
from balans_devstack.stack import DevStack

METERS = int(os.environ.get("BENCH_API_METERS", "10000"))
DAYS = int(os.environ.get("BENCH_API_DAYS", "366"))
SECONDS = float(os.environ.get("BENCH_API_SECONDS", "20"))
CLIENTS = 50
PASSWORD = "bench-password"


async def build_city(url: str) -> tuple[list[int], list[int]]:
    """Buildings until METERS meters exist, each with DAYS of hourly data; returns
    (building ids, flat ids with a consumer login 'c<flat id>')."""
    conn = await asyncpg.connect(url)
    try:
        vault = KeyVault.from_hex(None)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        index = 1
        while (await conn.fetchval("select count(*) from meters")) < METERS:
            spec = replace(reference_building(index=index), code=f"bench-{index}")
            building = await write_building(conn, spec, vault)
            if building is not None:
                started = time.perf_counter()
                await fill_building(conn, building, end - timedelta(days=DAYS), end)
                print(
                    f"building {index}: {DAYS} days in {time.perf_counter() - started:.1f} s",
                    flush=True,
                )
            index += 1
        await conn.execute("analyze")
        buildings = [r["id"] for r in await conn.fetch("select id from buildings order by id")]
        flats = [
            r["id"] for r in await conn.fetch("select id from flats order by random() limit 50")
        ]
        for flat in flats:
            if not await conn.fetchval("select 1 from users where username = $1", f"c{flat}"):
                account = await conn.fetchval("select id from accounts where flat_id = $1", flat)
                await create_user(conn, f"c{flat}", PASSWORD, "consumer", account)
        if not await conn.fetchval("select 1 from users where username = 'bench-operator'"):
            await create_user(conn, "bench-operator", PASSWORD, "operator")
        return buildings, flats
    finally:
        await conn.close()


async def token(http: httpx.AsyncClient, username: str) -> str:
    r = await http.post("/api/v1/auth/token", data={"username": username, "password": PASSWORD})
    r.raise_for_status()
    return str(r.json()["access_token"])


class KeepAlive:
    """A minimal HTTP/1.1 keep-alive GET client: the load generator shares the machine's two
    cores with the server, and httpx's per-request cost (about a millisecond of CPU, more
    under 50-way concurrency) would be measured as server latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, token: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)


async def load(port: int, buildings: list[int], flats: list[int], baseline: bool) -> list[float]:
    """Latencies (s) of CLIENTS clients looping for SECONDS."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        consumers = [(f, await token(http, f"c{f}")) for f in flats]
        operator = await token(http, "bench-operator")
    latencies: list[float] = []
    deadline = time.perf_counter() + SECONDS

    async def client(n: int) -> None:
        rnd = random.Random(n)
        flat, consumer = consumers[n % len(consumers)]
        conn = KeepAlive(port)
        while time.perf_counter() < deadline:
            if baseline:
                path, tok = "/api/v1/auth/me", consumer
            elif rnd.random() < 0.8:
                path, tok = f"/api/v1/flats/{flat}/profile?resolution=hour", consumer
            else:
                path, tok = f"/api/v1/buildings/{rnd.choice(buildings)}/overview", operator
            started = time.perf_counter()
            status, body = await conn.get(path, tok)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"{path}: {status} {body[:200]!r}")
        if conn.writer is not None:
            conn.writer.close()

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    return latencies


def summary(latencies: list[float]) -> tuple[float, float, float]:
    ordered = sorted(latencies)
    p50 = ordered[len(ordered) // 2] * 1000
    p99 = ordered[int(len(ordered) * 0.99)] * 1000
    return p50, p99, len(ordered) / SECONDS


def main() -> None:
    stack = DevStack(Path(".balans/bench-api"))
    urls = stack.start()
    server = None
    try:
        migrate.upgrade(urls.database_url)
        buildings, flats = asyncio.run(build_city(urls.database_url))
        port = free_port()
        env = {
            **os.environ,
            **urls.env(),
            "BALANS_API_PORT": str(port),
            "BALANS_LOG_LEVEL": "warning",
            "BALANS_LOGIN_RATE": "1000/minute",
        }
        server = subprocess.Popen([sys.executable, "-m", "balans_api"], env=env)
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(base + "/api/v1/openapi.json", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        meters = asyncio.run(_count(urls.database_url))
        print(f"data: {len(buildings)} buildings, {meters} meters, {DAYS} days hourly")
        b50, b99, brps = summary(asyncio.run(load(port, buildings, flats, baseline=True)))
        print(f"baseline /auth/me p50_ms={b50:.1f} p99_ms={b99:.1f} rps={brps:.0f}")
        p50, p99, rps = summary(asyncio.run(load(port, buildings, flats, baseline=False)))
        print(f"ratio to baseline: p50 x{p50 / b50:.2f}, rps x{rps / brps:.2f}")
        print(f"api p50_ms={p50:.1f} p99_ms={p99:.1f} rps={rps:.0f}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        stack.stop()


async def _count(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("select count(*) from meters"))
    finally:
        await conn.close()


if __name__ == "__main__":
    main()
