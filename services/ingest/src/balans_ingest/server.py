"""The concentrator TCP server: handshake, verify, publish to JetStream, then ACK.

One :class:`Session` per connection reads frames one at a time (asyncio streams: with
whole batches per frame the frame rate is low, and not reading is the backpressure), and
keeps at most ``ingest_max_inflight`` UPLOADs waiting for JetStream's ack; while that
many are waiting it reads nothing more, so a slow JetStream slows the concentrators down
instead of filling a queue. Errors before a frame's tag verifies end the connection
(NACK, then close); a well-tagged frame with a bad body is NACKed and the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.client import JetStreamContext

from balans_ingest.downlink import CommandChannel
from balans_ingest.duplicates import SequenceMemory, SessionSequences
from balans_ingest.handshake import accept_hello
from balans_ingest.hellos import RecentHellos
from balans_ingest.keys import ConcentratorKey, KeyStore
from balans_ingest.metrics import (
    BYTES,
    CONNECTIONS,
    CONNECTIONS_TOTAL,
    ERRORS,
    FRAMES,
    PUBLISH_SECONDS,
    RECORDS,
    SESSIONS_TOTAL,
)
from balans_ingest.plausibility import UploadGate
from balans_ingest.settings import IngestSettings
from balans_protocol import subjects
from balans_protocol.auth import UNAUTHENTICATED_KEY
from balans_protocol.errors import NackReason, ProtocolError
from balans_protocol.frames import (
    LENGTH,
    Ack,
    Body,
    Command,
    CommandResult,
    Frame,
    Nack,
    Ping,
    Upload,
    decode_frame,
    encode_frame,
    peek_header,
)
from balans_protocol.framing import read_frame
from balans_protocol.records import split_sections
from balans_protocol.uploads import UploadHeaders

log = structlog.get_logger("ingest")


class ConnectionClosedError(Exception):
    """The session must end (after a NACK was sent, or the peer misbehaved)."""


class IngestServer:
    """Accepts concentrator connections; one :class:`Session` each."""

    def __init__(
        self, settings: IngestSettings, nc: Client, js: JetStreamContext, keys: KeyStore
    ) -> None:
        self.settings = settings
        self.nc = nc
        self.js = js
        self.keys = keys
        self.hellos = RecentHellos()  # to tell a replayed HELLO at once
        self.sequences = SequenceMemory()  # to tell a reused boot counter from a resend
        self.gate = UploadGate(settings, settings.ingest_module_cache_s)
        self.sessions: dict[int, Session] = {}  # concentrator serial -> its live session
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._open: set[Session] = set()

    async def start(self) -> int:
        """Listen; return the bound port."""
        self._server = await asyncio.start_server(
            self._accept, self.settings.ingest_host, self.settings.ingest_port
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop accepting, close every connection (un-ACKed batches will be resent)."""
        if self._server is not None:
            self._server.close()
        # Abort rather than cancel: asyncio logs a cancelled connection task as an error.
        for session in list(self._open):
            session.abort()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        CONNECTIONS.inc()
        CONNECTIONS_TOTAL.inc()
        session = Session(self, reader, writer)
        self._open.add(session)
        try:
            await session.run()
        finally:
            CONNECTIONS.dec()
            await session.close()
            self._open.discard(session)
            self._connections.discard(task)

    def replace_session(self, session: Session) -> None:
        """A concentrator reconnected and proved its key: its older connection (if any) is
        dead, close it."""
        old = self.sessions.get(session.serial)
        self.sessions[session.serial] = session
        if old is not None and old is not session:
            old.abort()

    def forget_session(self, session: Session) -> None:
        if self.sessions.get(session.serial) is session:
            del self.sessions[session.serial]


class Session:
    """One concentrator connection."""

    def __init__(
        self, server: IngestServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.serial = 0
        self.peer = writer.get_extra_info("peername")
        self._concentrator: ConcentratorKey | None = None
        self._boot = 0
        self._sequences: SessionSequences | None = None
        self._key = UNAUTHENTICATED_KEY
        self._seq = 0
        self._inflight: set[asyncio.Task[None]] = set()
        self._commands: CommandChannel | None = None

    async def run(self) -> None:
        try:
            await self._handshake()
            while True:
                await self._serve_one()
        except ConnectionClosedError:
            pass
        except ProtocolError as exc:  # a frame we cannot trust: answer, count, hang up
            ERRORS.labels(exc.reason.name.lower()).inc()
            log.warning("protocol error", serial=self.serial, peer=self.peer, error=str(exc))
            self.send(Nack(0, exc.reason))
        except TimeoutError:
            ERRORS.labels("idle_timeout").inc()
            log.info("idle timeout", serial=self.serial, peer=self.peer)
        except asyncio.IncompleteReadError as exc:
            if exc.partial or exc.expected != LENGTH.size:  # gone in the middle of a frame
                ERRORS.labels("truncated").inc()
                log.warning("truncated frame", serial=self.serial, got=len(exc.partial))
            else:
                log.info("connection closed by peer", serial=self.serial)
        except ConnectionError as exc:
            log.info("connection lost", serial=self.serial, error=repr(exc))

    async def close(self) -> None:
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._commands is not None:
            await self._commands.close()
        self.server.forget_session(self)
        self.writer.close()
        with contextlib.suppress(ConnectionError):  # the peer may be gone already
            await self.writer.wait_closed()

    def abort(self) -> None:
        self.writer.transport.abort()

    def send(self, body: Body) -> int:
        """Write one frame to the concentrator; return its sequence number. Until the peer
        has proved its key, frames carry concentrator 0 and the unauthenticated key."""
        return self._write(body, self.serial if self._concentrator else 0, self._key)

    def _write(self, body: Body, serial: int, key: bytes) -> int:
        self._seq += 1
        self.writer.write(encode_frame(Frame(serial, self._seq, body), key))
        return self._seq

    async def _read(self, timeout_s: float) -> bytes:
        async with asyncio.timeout(timeout_s):
            raw = await read_frame(self.reader)
        BYTES.inc(len(raw))
        return raw

    async def _handshake(self) -> None:
        """The HELLO exchange (handshake.py); nothing outside this connection changes
        before the peer has proved its key."""
        proven = await accept_hello(
            self._read_handshake, self._write, self.server.keys, self.server.hellos
        )
        self.serial = proven.concentrator.serial
        self._concentrator = proven.concentrator
        self._boot = proven.boot
        self._key = proven.session_key
        self._sequences = SessionSequences(
            self.server.sequences, self.serial, self._boot, proven.hello_seq, proven.proof_seq
        )
        self.server.replace_session(self)
        self._commands = CommandChannel(self.server.nc, self.serial, self._send_command)
        await self._commands.open()
        self.send(Ack(proven.proof_seq))  # the session is live: uploads and commands flow
        SESSIONS_TOTAL.inc()
        log.info("concentrator connected", serial=self.serial, boot=self._boot, peer=self.peer)

    async def _read_handshake(self) -> bytes:
        return await self._read(self.settings.ingest_handshake_timeout_s)

    async def _serve_one(self) -> None:
        raw = await self._read(self.settings.ingest_idle_timeout_s)
        header = peek_header(raw)
        FRAMES.labels(header.type.name).inc()
        if header.concentrator != self.serial:
            raise ProtocolError(NackReason.WRONG_CONCENTRATOR, str(header.concentrator))
        try:
            frame = decode_frame(raw, self._key)
        except ProtocolError as exc:
            if exc.reason is not NackReason.BAD_FORMAT:
                raise
            ERRORS.labels(exc.reason.name.lower()).inc()
            log.warning("bad frame body", serial=self.serial, seq=header.seq, error=str(exc))
            self.send(Nack(header.seq, exc.reason))
            return
        await self._dispatch(frame)

    async def _dispatch(self, frame: Frame) -> None:
        match frame.body:
            case Upload():
                await self._accept_upload(frame.seq, frame.body)
            case Ping(reply=False):
                self.send(Ping(reply=True))
            case Ping(reply=True):
                pass
            case CommandResult() as result:
                if self._commands is None or not self._commands.resolve(result):
                    log.warning("unexpected COMMAND_RESULT", serial=self.serial, seq=frame.seq)
            case _:
                ERRORS.labels("bad_format").inc()
                self.send(Nack(frame.seq, NackReason.BAD_FORMAT))
                raise ConnectionClosedError(f"{frame.type.name} from a concentrator")

    def _send_command(self, command: Command) -> int:
        return self.send(command)

    async def _accept_upload(self, seq: int, upload: Upload) -> None:
        assert self._sequences is not None
        first_sent_here = self._sequences.received(seq)  # duplicates.py
        while len(self._inflight) >= self.settings.ingest_max_inflight:
            await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
        sections = split_sections(upload.payload)
        assert self._concentrator is not None
        building_id = self._concentrator.building_id
        if refused := await self.server.gate.refusal(
            self.server.keys.pool, self.serial, seq, building_id, sections
        ):
            self.send(Nack(seq, refused))
            return
        for section in sections:
            RECORDS.labels(section.record_type.name).inc(section.count)
        task = asyncio.create_task(self._publish(seq, upload.payload, first_sent_here))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _publish(self, seq: int, payload: bytes, first_sent_here: bool) -> None:
        assert self._concentrator is not None
        headers = UploadHeaders(
            concentrator=self.serial,
            building_id=self._concentrator.building_id,
            boot=self._boot,
            seq=seq,
            received_unix=time.time(),
        )
        started = time.perf_counter()
        try:
            ack = await self.server.js.publish(
                subjects.upload(self.serial),
                payload,
                timeout=self.settings.ingest_publish_timeout_s,
                headers=headers.to_headers(),
            )
        except (NatsError, TimeoutError) as exc:
            ERRORS.labels("unavailable").inc()
            log.warning("publish failed", serial=self.serial, seq=seq, error=repr(exc))
            self.send(Nack(seq, NackReason.UNAVAILABLE))
            return
        PUBLISH_SECONDS.observe(time.perf_counter() - started)
        if ack.duplicate:
            assert self._sequences is not None
            self._sequences.duplicate(seq, first_sent_here=first_sent_here)
        self.send(Ack(seq))
