"""Crashes and restarts lose nothing and double nothing: the persister SIGKILLed mid-stream,
and the NATS server restarted while concentrators upload."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

import asyncpg
import pytest
from ingest_harness import recent_day, running_ingest, running_persister, wait_for_rows

from balans_devstack.eventually import eventually
from balans_devstack.nats_server import EmbeddedNats
from balans_devstack.processes import free_port
from balans_protocol.client import ConcentratorClient
from balans_protocol.records import PulseRecord

HOUR = 3600
BATCHES = 60
INPUTS = 4
STARTUP_S = 120.0  # a service process starting on a busy machine (the other test worker)


async def _upload_day(
    client: ConcentratorClient, modules: list[int], t0: int, hours: range = range(BATCHES)
) -> int:
    """Hourly batches of every module input; returns the rows sent."""
    sent = 0
    for hour in hours:
        batch = [
            PulseRecord(m, i, t0 + hour * HOUR, hour * 10 + i)
            for m in modules
            for i in range(INPUTS)
        ]
        await client.upload(batch)
        sent += len(batch)
        await asyncio.sleep(0.005)
    return sent


async def _stored(database_url: str, t0: int) -> tuple[int, int, int]:
    """(rows, distinct keys, sum of counts) stored from ``t0`` on."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """select count(*), count(distinct (module_serial, input, ts)), coalesce(sum(count), 0)
               from pulse_readings where ts >= to_timestamp($1) and ts < to_timestamp($2)""",
            t0,
            t0 + BATCHES * HOUR,
        )
    finally:
        await conn.close()
    return int(row[0]), int(row[1]), int(row[2])


def _expected_sum(modules: list[int]) -> int:
    return len(modules) * sum(h * 10 + i for h in range(BATCHES) for i in range(INPUTS))


def _start_persister(nats_url: str, database_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BALANS_NATS_URL": nats_url,
        "BALANS_DATABASE_URL": database_url,
        "BALANS_HEALTH_PORT": str(free_port()),
        "BALANS_PERSISTER_BATCH_MESSAGES": "3",
        "BALANS_PERSISTER_FETCH_TIMEOUT_S": "0.05",
        "BALANS_PERSISTER_ACK_WAIT_S": "2",  # what the killed one held comes back soon
    }
    return subprocess.Popen(
        [sys.executable, "-m", "balans_ingest.persister"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
async def test_persister_sigkilled_mid_stream(
    own_nats: EmbeddedNats, site: Any, neighbour: Any
) -> None:
    """SIGKILL the persister while it writes; after a restart every reading is stored
    exactly once."""
    t0 = recent_day()
    sites = (site, neighbour)
    proc = _start_persister(own_nats.url, site.database_url)
    try:
        async with running_ingest(own_nats.url, site.database_url) as ingest:
            clients = [ingest.client(s.serial, s.key, boot=100) for s in sites]
            for client in clients:
                client.start()
            pairs = list(zip(clients, sites, strict=True))
            half = BATCHES // 2
            first = asyncio.gather(*(_upload_day(c, s.modules, t0, range(half)) for c, s in pairs))
            total = BATCHES * INPUTS * sum(len(s.modules) for s in sites)
            stored = await wait_for_rows(
                site.database_url,
                f"select count(*) from pulse_readings where ts >= to_timestamp({t0})",
                total // 8,
                timeout_s=STARTUP_S,
            )
            assert stored >= total // 8, "the persister stored nothing to be killed in"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            killed_at, _, _ = await _stored(site.database_url, t0)
            sent = sum(await first)
            sent += sum(
                await asyncio.gather(
                    *(_upload_day(c, s.modules, t0, range(half, BATCHES)) for c, s in pairs)
                )
            )
            async with asyncio.timeout(30):
                for client in clients:
                    await client.flush()
            proc = _start_persister(own_nats.url, site.database_url)
            await wait_for_rows(
                site.database_url,
                f"select count(*) from pulse_readings where ts >= to_timestamp({t0})",
                total,
            )
            for client in clients:
                await client.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert 0 < killed_at <= total // 2
    assert sent == total
    assert await _stored(site.database_url, t0) == (
        total,
        total,
        sum(_expected_sum(s.modules) for s in sites),
    )


@pytest.mark.slow
async def test_nats_restarted_while_uploading(
    own_nats: EmbeddedNats, site: Any, neighbour: Any
) -> None:
    """Restart NATS (same port, same store) mid-upload; the clients resend what was not
    ACKed and the tables end up with every reading exactly once."""
    t0 = recent_day() + 100 * HOUR
    sites = (site, neighbour)
    total = BATCHES * INPUTS * sum(len(s.modules) for s in sites)
    async with (
        running_ingest(own_nats.url, site.database_url, ingest_publish_timeout_s=1) as ingest,
        running_persister(own_nats.url, site.database_url, persister_batch_messages=4),
    ):
        clients = [ingest.client(s.serial, s.key, boot=200) for s in sites]
        for client in clients:
            client.start()
        uploads = asyncio.gather(
            *(_upload_day(c, s.modules, t0) for c, s in zip(clients, sites, strict=True))
        )
        # stop NATS once a fifth of the batches are acknowledged, so the rest are refused
        # (waiting for stored rows instead, a busy machine's persister lagged behind every
        # upload being acknowledged, and the restart came too late to refuse any)
        await eventually(
            "a fifth of the batches acknowledged",
            lambda: sum(c.stats.acked_batches for c in clients) >= 2 * BATCHES // 5,
            timeout_s=STARTUP_S,
            interval_s=0.001,
        )
        port = own_nats.port
        own_nats.stop()
        await asyncio.sleep(1.0)
        own_nats.start(port=port)
        sent = sum(await uploads)
        async with asyncio.timeout(60):
            for client in clients:
                await client.flush()
        await wait_for_rows(
            site.database_url,
            f"select count(*) from pulse_readings where ts >= to_timestamp({t0})",
            total,
            timeout_s=30,
        )
        unavailable = sum(c.stats.unavailable_nacks for c in clients)
        for client in clients:
            await client.close()
    assert sent == total
    assert unavailable > 0, "the restart should have refused some uploads"
    assert await _stored(site.database_url, t0) == (
        total,
        total,
        sum(_expected_sum(s.modules) for s in sites),
    )
