"""Helpers for running ingest, the persister and any other service inside one event loop,
and for driving the wire protocol by hand: used by the tests and the ingest benchmark, so
they live beside the benchmark rather than in the service's package."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
from nats.aio.client import Client

from balans_core.nats import connect_nats
from balans_core.service import ServiceContext
from balans_core.settings import CommonSettings
from balans_db.secrets import KeyVault
from balans_devstack.eventually import eventually
from balans_ingest.keys import KeyStore
from balans_ingest.persister.consumer import Persister
from balans_ingest.server import IngestServer
from balans_ingest.settings import IngestSettings, PersisterSettings
from balans_protocol.auth import new_nonce, session_key
from balans_protocol.client import ConcentratorClient
from balans_protocol.frames import Ack, Body, Frame, Hello, decode_frame, encode_frame
from balans_protocol.framing import read_frame
from balans_protocol.streams import ensure_streams


@dataclass
class Pipeline:
    """A running ingest server and its NATS connection."""

    port: int
    nc: Client
    server: IngestServer

    def client(self, serial: int, key: bytes, *, boot: int = 1, **kw: object) -> ConcentratorClient:
        """A reference client for this server, reconnecting quickly."""
        return ConcentratorClient(
            serial,
            key,
            "127.0.0.1",
            self.port,
            boot=boot,
            reconnect_delay_s=0.1,
            resend_delay_s=0.2,
            **kw,
        )


@contextlib.asynccontextmanager
async def running_ingest(
    nats_url: str, database_url: str, **overrides: object
) -> AsyncIterator[Pipeline]:
    """The ingest server in this event loop, on a free port."""
    settings = IngestSettings(
        database_url=database_url,
        nats_url=nats_url,
        ingest_host="127.0.0.1",
        ingest_port=0,
        **overrides,
    )
    nc = await connect_nats(nats_url, "ingest-test")
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    server = IngestServer(settings, nc, nc.jetstream(), KeyStore(pool, KeyVault()))
    try:
        await ensure_streams(nc.jetstream())
        port = await server.start()
        yield Pipeline(port, nc, server)
    finally:
        await server.stop()
        await nc.close()
        await pool.close()


@contextlib.asynccontextmanager
async def running_persister(
    nats_url: str, database_url: str, **overrides: object
) -> AsyncIterator[Persister]:
    """The persister in this event loop until the block ends."""
    settings = PersisterSettings(
        database_url=database_url,
        nats_url=nats_url,
        persister_fetch_timeout_s=0.05,
        **overrides,
    )
    nc = await connect_nats(nats_url, "persister-test")
    persister = Persister(settings, nc, nc.jetstream())
    await ensure_streams(nc.jetstream())
    stopping = asyncio.Event()
    task = asyncio.create_task(persister.run(stopping))
    try:
        yield persister
    finally:
        stopping.set()
        await task
        await nc.close()


@contextlib.asynccontextmanager
async def running_service(
    serve: Callable[[ServiceContext], Coroutine[Any, Any, None]],
    settings: CommonSettings,
    name: str,
) -> AsyncIterator[ServiceContext]:
    """A service's ``serve`` in this event loop, ready, until the block ends (then stopped as
    on SIGTERM)."""
    ctx = ServiceContext(name=name, settings=settings)
    task = asyncio.create_task(serve(ctx))
    try:
        await eventually(f"{name} ready", lambda: ctx.ready or task.done(), timeout_s=30)
        assert ctx.ready, task
        yield ctx
    finally:
        ctx.stopping.set()
        await asyncio.wait_for(task, 30)


def recent_day(days_ago: int = 30) -> int:
    """A UTC midnight ``days_ago`` days back (Unix s): test readings must be dated inside the
    window ingest accepts (not in the future, not before ``readings_horizon_days``)."""
    return (int(time.time()) // 86_400 - days_ago) * 86_400


async def wait_for_rows(database_url: str, sql: str, expected: int, timeout_s: float = 20) -> int:
    """Poll ``sql`` (a count) until it reaches ``expected`` or the time is up."""
    conn = await asyncpg.connect(database_url)
    try:
        async with asyncio.timeout(timeout_s):
            while (n := await conn.fetchval(sql)) < expected:  # noqa: ASYNC110 - polling a table
                await asyncio.sleep(0.05)
        return int(n)
    except TimeoutError:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


class RawConcentrator:
    """A hand-driven connection for sending exact frames (and malformed bytes)."""

    def __init__(self, serial: int, port: int, key: bytes) -> None:
        self.serial = serial
        self.port = port
        self.key = key
        self.session_key = key
        self.sent: list[bytes] = []  # every frame sent, in order
        self.reader: asyncio.StreamReader
        self.writer: asyncio.StreamWriter

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def handshake(self, boot: int = 1, seq: int = 1) -> None:
        """HELLO (``seq``), the server's challenge, the proof (``seq + 1``) and its ACK;
        afterwards frames are tagged with the session key. ``sent`` keeps the bytes."""
        await self.connect()
        nonce = new_nonce()
        self.send(Hello(boot, nonce), seq=seq, key=self.key)
        challenge = decode_frame(await self.read_raw(), self.key)
        assert isinstance(challenge.body, Hello)
        self.session_key = session_key(self.key, nonce, challenge.body.nonce)
        self.send(Hello(boot, nonce, echo=challenge.body.nonce), seq=seq + 1)
        confirmed = await self.read()
        assert confirmed.body == Ack(seq + 1), confirmed

    def send(self, body: Body, seq: int, key: bytes | None = None) -> None:
        frame = encode_frame(Frame(self.serial, seq, body), key or self.session_key)
        self.sent.append(frame)
        self.writer.write(frame)

    async def read_raw(self) -> bytes:
        async with asyncio.timeout(10):
            return await read_frame(self.reader)

    async def read(self, key: bytes | None = None) -> Frame:
        return decode_frame(await self.read_raw(), key or self.session_key)

    async def closed_by_server(self) -> bool:
        """True once the server has closed the connection (EOF)."""
        async with asyncio.timeout(10):
            while await self.reader.read(65536):
                pass
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
