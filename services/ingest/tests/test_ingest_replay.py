"""A HELLO recorded off the wire and replayed cannot take a concentrator offline: the live
session keeps uploading and receiving commands, nothing of it changes, every replay is
counted (docs/protocol.md, "Handshake")."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ingest_harness import (
    Pipeline,
    RawConcentrator,
    recent_day,
    running_ingest,
    running_persister,
    wait_for_rows,
)
from prometheus_client import REGISTRY

from balans_devstack.nats_server import EmbeddedNats
from balans_protocol.auth import UNAUTHENTICATED_KEY
from balans_protocol.client import ConcentratorClient
from balans_protocol.commands import request_command
from balans_protocol.frames import (
    Command,
    CommandStatus,
    FrameSplitter,
    Nack,
    decode_frame,
    peek_header,
)
from balans_protocol.framing import read_frame
from balans_protocol.messages import CommandRequest
from balans_protocol.records import PulseRecord

HOUR = 3600
T0 = recent_day()  # inside the readings window ingest accepts
REPLAYS = 100


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class RecordingRelay:
    """A TCP relay between a concentrator and ingest that keeps every byte the
    concentrator sent: what an attacker on the path records."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.recorded = bytearray()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def frames(self) -> list[bytes]:
        return FrameSplitter().feed(bytes(self.recorded))

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, record: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    if record:
                        self.recorded += data
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(
            pipe(reader, up_writer, record=True), pipe(up_reader, writer, record=False)
        )


@contextlib.asynccontextmanager
async def live_concentrator(
    ingest: Pipeline, site: Any, port: int, boot: int
) -> AsyncIterator[ConcentratorClient]:
    """The real concentrator, connected through ``port``, executing every command."""

    async def execute(command: Command) -> tuple[CommandStatus, str]:
        return CommandStatus.DONE, f"{command.action.name.lower()} {command.module}"

    client = ConcentratorClient(
        site.serial,
        site.key,
        "127.0.0.1",
        port,
        boot=boot,
        on_command=execute,
        reconnect_delay_s=0.1,
        resend_delay_s=0.2,
    )
    client.start()
    try:
        async with asyncio.timeout(10):
            await client.wait_connected()
        yield client
    finally:
        await client.close()


async def replay(port: int, frames: list[bytes]) -> list[str]:
    """Send recorded frames on a new connection; what came back, until the server closed
    it: frame types, and the reason of a NACK."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for frame in frames:
        writer.write(frame)
    answers: list[str] = []
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        async with asyncio.timeout(10):
            while True:
                raw = await read_frame(reader)
                kind = peek_header(raw).type.name
                if kind == "NACK":
                    body = decode_frame(raw, UNAUTHENTICATED_KEY).body
                    assert isinstance(body, Nack)
                    kind = f"NACK {body.reason.name}"
                answers.append(kind)
    writer.close()
    return answers


async def upload_hours(client: ConcentratorClient, module: int, hours: range) -> None:
    for hour in hours:
        await client.upload([PulseRecord(module, 0, T0 + hour * HOUR, hour)])
        await asyncio.sleep(0.01)


async def command(ingest: Pipeline, site: Any, module: int, n: int) -> str:
    request = CommandRequest(
        command_id=f"c{n}", module_serial=module, action="ping", input=0, timeout_s=5
    )
    reply = await request_command(ingest.nc, site.serial, request)
    return f"{reply.status}: {reply.detail}"


async def test_replayed_hello_leaves_the_live_session_alone(
    own_nats: EmbeddedNats, site: Any
) -> None:
    """The concentrator's own HELLO and proof, recorded on the path and replayed 100 times
    while it uploads: each replay is refused at its first frame and counted; the live
    session is never closed or replaced, its uploads are all stored and its commands all
    answered."""
    module = site.modules[0]
    replays_before = _metric("balans_ingest_hello_replays_total")
    sessions_before = _metric("balans_ingest_sessions_total")
    async with (
        running_ingest(own_nats.url, site.database_url) as ingest,
        running_persister(own_nats.url, site.database_url),
    ):
        relay = RecordingRelay(ingest.port)
        relay_port = await relay.start()
        async with live_concentrator(ingest, site, relay_port, boot=31) as client:
            live = ingest.server.sessions[site.serial]
            hello, proof = relay.frames()[:2]

            async def attack() -> list[list[str]]:
                answers = []
                for burst in range(REPLAYS // 10):
                    answers += await asyncio.gather(
                        *(replay(ingest.port, [hello, proof]) for _ in range(10))
                    )
                    answers.append([await command(ingest, site, module, burst)])
                return answers

            _, answers = await asyncio.gather(upload_hours(client, module, range(60)), attack())
            async with asyncio.timeout(15):
                await client.flush()
            still_live = ingest.server.sessions[site.serial]
            stored = await wait_for_rows(
                site.database_url,
                f"select count(*) from pulse_readings where module_serial = {module}",
                60,
            )
        await relay.close()
    refused = [a for a in answers if a[0].startswith("NACK")]
    commands = [a[0] for a in answers if not a[0].startswith("NACK")]
    assert refused == [["NACK REPLAYED"]] * REPLAYS
    assert commands == [f"done: ping {module}"] * (REPLAYS // 10)
    assert still_live is live
    assert client.stats.connects == 1
    assert client.stats.rejected == []
    assert stored == 60
    assert _metric("balans_ingest_hello_replays_total") - replays_before == REPLAYS
    assert _metric("balans_ingest_sessions_total") - sessions_before == 1


async def test_replay_to_a_server_that_never_saw_it_fails_the_challenge(
    own_nats: EmbeddedNats, site: Any
) -> None:
    """A HELLO recorded before this ingest instance started is challenged, but neither the
    recorded proof nor silence answers the challenge: the replayer is refused, counted as
    a failed proof, and the live concentrator keeps its session and its commands."""
    module = site.modules[1]
    async with running_ingest(own_nats.url, site.database_url) as earlier:
        recorder = RawConcentrator(site.serial, earlier.port, site.key)
        await recorder.handshake(boot=40)
        await recorder.close()
    hello, proof = recorder.sent[:2]
    bad_tag_before = _metric("balans_ingest_hello_proof_failures_total", reason="bad_tag")
    silent_before = _metric("balans_ingest_hello_proof_failures_total", reason="no_proof")
    async with (
        running_ingest(own_nats.url, site.database_url, ingest_handshake_timeout_s=0.5) as ingest,
        live_concentrator(ingest, site, ingest.port, boot=41) as client,
    ):
        live = ingest.server.sessions[site.serial]
        with_proof = await asyncio.gather(*(replay(ingest.port, [hello, proof]) for _ in range(20)))
        silent = await asyncio.gather(*(replay(ingest.port, [hello]) for _ in range(5)))
        reply = await command(ingest, site, module, 0)
        await client.upload([PulseRecord(module, 0, T0, 1)])
        async with asyncio.timeout(10):
            await client.flush()
        still_live = ingest.server.sessions[site.serial]
    assert with_proof == [["HELLO", "NACK BAD_TAG"]] * 20
    assert silent == [["HELLO"]] * 5
    assert reply == f"done: ping {module}"
    assert still_live is live
    assert client.stats.connects == 1
    failures = _metric("balans_ingest_hello_proof_failures_total", reason="bad_tag")
    assert failures - bad_tag_before == 20
    timeouts = _metric("balans_ingest_hello_proof_failures_total", reason="no_proof")
    assert timeouts - silent_before == 5
