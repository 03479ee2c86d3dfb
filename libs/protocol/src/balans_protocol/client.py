"""The reference concentrator: a small asyncio client of the wire protocol.

Used by the tests, the benchmark and the simulator; firmware authors can read it next to
docs/protocol.md. It behaves as a real concentrator must:

- every start takes a boot counter it never used before (``from_boot_file`` keeps it in
  a state file, ``balans_protocol.boot``), so its batches' message ids never repeat
  those of an earlier start;
- the HELLO exchange ends with its proof (the HELLO repeated with the server's nonce,
  under the session key) and the server's ACK of it: only then is it connected;
- every batch gets the next sequence number and stays in a buffer until the server ACKs
  it; after a reconnect (new HELLO, new session key) everything un-ACKed is resent with
  its *original* sequence number, so the server deduplicates it;
- a NACK ``UNAVAILABLE`` keeps the batch and resends it after a delay; a NACK
  ``BAD_FORMAT`` drops it (it would never be accepted) and records it in ``rejected``;
- COMMAND frames are answered with COMMAND_RESULT through the ``on_command`` callback.

Example::

    client = ConcentratorClient.from_boot_file(serial, key, "127.0.0.1", 4100, data / "boot")
    async with client:
        await client.upload([PulseRecord(module=100001, input=0, ts_unix=t, count=1234)])
        async with asyncio.timeout(10):
            await client.flush()   # every batch ACKed
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from balans_protocol.auth import UNAUTHENTICATED_KEY, new_nonce, session_key
from balans_protocol.boot import next_boot
from balans_protocol.errors import NackReason, ProtocolError
from balans_protocol.frames import (
    Ack,
    Body,
    Command,
    CommandResult,
    CommandStatus,
    Frame,
    Hello,
    Nack,
    Ping,
    Upload,
    decode_frame,
    encode_frame,
)
from balans_protocol.framing import read_frame
from balans_protocol.records import Record, encode_records

log = structlog.get_logger("concentrator")

CommandHandler = Callable[[Command], Awaitable[tuple[CommandStatus, str]]]
MAX_SEQ = 0xFFFF_FFFF


async def refuse_commands(command: Command) -> tuple[CommandStatus, str]:
    """Default ``on_command``: this concentrator executes nothing."""
    return CommandStatus.FAILED, f"no handler for {command.action.name}"


class HandshakeRefusedError(Exception):
    """The server answered HELLO with a NACK (unknown concentrator, bad tag...)."""

    def __init__(self, reason: NackReason) -> None:
        super().__init__(reason.name)
        self.reason = reason


@dataclass
class ClientStats:
    """What happened so far (for tests and the simulator's own metrics)."""

    connects: int = 0
    sent_frames: int = 0
    resent_batches: int = 0
    acked_batches: int = 0
    unavailable_nacks: int = 0
    refused_handshakes: list[NackReason] = field(default_factory=list)
    rejected: list[tuple[int, NackReason]] = field(default_factory=list)  # (seq, reason)


class ConcentratorClient:
    """One concentrator's connection to ingest, reconnecting until closed.

    ``boot`` must differ from the boot counter of every earlier start of the concentrator
    (docs/protocol.md, "Sequence numbers"); sequence numbers restart at 1 with it.
    :meth:`from_boot_file` takes the next one from a state file.
    ``max_pending`` bounds the buffer: :meth:`upload` waits while it is full. Reconnects
    wait ``reconnect_delay_s``, doubling after each failure up to ``max_reconnect_delay_s``.
    """

    def __init__(
        self,
        serial: int,
        key: bytes,
        host: str,
        port: int,
        *,
        boot: int,
        on_command: CommandHandler = refuse_commands,
        max_pending: int = 10_000,
        reconnect_delay_s: float = 0.5,
        max_reconnect_delay_s: float = 30.0,
        resend_delay_s: float = 1.0,
        ping_interval_s: float = 30.0,
    ) -> None:
        self.serial = serial
        self.host = host
        self.port = port
        self.boot = boot
        self.stats = ClientStats()
        self._key = key
        self._on_command = on_command
        self._max_pending = max_pending
        self._reconnect_delay_s = reconnect_delay_s
        self._max_reconnect_delay_s = max_reconnect_delay_s
        self._delay_s = reconnect_delay_s  # doubles after each failed attempt
        self._resend_delay_s = resend_delay_s
        self._ping_interval_s = ping_interval_s
        self._seq = 0
        self._pending: dict[int, bytes] = {}  # seq -> UPLOAD body, insertion (= seq) order
        self._space = asyncio.Condition()
        self._writer: asyncio.StreamWriter | None = None
        self._session_key: bytes | None = None
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @classmethod
    def from_boot_file(
        cls, serial: int, key: bytes, host: str, port: int, boot_file: Path, **options: Any
    ) -> ConcentratorClient:
        """A client for a new start of the concentrator: its boot counter is the next one
        from ``boot_file`` (created if missing, see :func:`balans_protocol.boot.next_boot`)."""
        return cls(serial, key, host, port, boot=next_boot(boot_file), **options)

    # --- public API ---

    def start(self) -> None:
        """Start connecting (and reconnecting) in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"concentrator-{self.serial}")

    async def upload(self, records: Iterable[Record]) -> int:
        """Buffer one batch and send it if connected; return its sequence number.

        Raises ``ValueError`` if a record does not fit the wire format."""
        body = encode_records(records)
        async with self._space:
            await self._space.wait_for(lambda: len(self._pending) < self._max_pending)
            seq = self._next_seq()
            self._pending[seq] = body
        if self._connected.is_set() and self._writer is not None:
            self._send_upload(seq, body)
            # A lost connection surfaces in the connection loop (logged, then resent).
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()
        return seq

    async def flush(self) -> None:
        """Wait until every batch so far has been ACKed (or rejected); bound it with
        ``asyncio.timeout``."""
        async with self._space:
            await self._space.wait_for(lambda: not self._pending)

    async def wait_connected(self) -> None:
        """Wait until a session is established."""
        await self._connected.wait()

    @property
    def pending(self) -> int:
        """Batches not yet ACKed."""
        return len(self._pending)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def close(self) -> None:
        """Stop reconnecting and close the connection; un-ACKed batches stay pending."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def drop_connection(self) -> None:
        """Abort the TCP connection (as a GPRS link would); the client reconnects."""
        if self._writer is not None:
            self._writer.transport.abort()

    async def __aenter__(self) -> ConcentratorClient:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- connection loop ---

    def _next_seq(self) -> int:
        if self._seq >= MAX_SEQ:
            raise OverflowError("sequence space of this boot is used up: restart with boot+1")
        self._seq += 1
        return self._seq

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                log.info("connection lost", serial=self.serial, error=repr(exc))
            except HandshakeRefusedError as exc:
                self.stats.refused_handshakes.append(exc.reason)
                log.warning("handshake refused", serial=self.serial, reason=exc.reason.name)
            except ProtocolError as exc:
                log.warning("protocol error from server", serial=self.serial, reason=str(exc))
            finally:
                self._connected.clear()
                self._session_key = None
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
            await asyncio.sleep(self._delay_s)
            self._delay_s = min(2 * self._delay_s, self._max_reconnect_delay_s)

    async def _session(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self._writer = writer
        self._session_key = await self._handshake(reader, writer)
        self.stats.connects += 1
        self._delay_s = self._reconnect_delay_s
        backlog = list(self._pending.items())
        self._connected.set()
        # Resend while reading, so ACKs of the backlog never wait behind our own writes.
        helpers = [
            asyncio.create_task(self._resend(backlog, writer)),
            asyncio.create_task(self._ping_when_idle()),
        ]
        try:
            while True:
                await self._handle(decode_frame(await read_frame(reader), self._session_key))
        finally:
            for helper in helpers:
                helper.cancel()

    async def _resend(self, backlog: list[tuple[int, bytes]], writer: asyncio.StreamWriter) -> None:
        for seq, body in backlog:
            if seq in self._pending:
                self.stats.resent_batches += 1
                self._send_upload(seq, body)
                await writer.drain()

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        """HELLO, the server's challenge, our proof (docs/protocol.md, "Handshake")."""
        nonce = new_nonce()
        hello = Frame(self.serial, self._next_seq(), Hello(self.boot, nonce))
        writer.write(encode_frame(hello, self._key))
        async with asyncio.timeout(10):
            raw = await read_frame(reader)
        nack = _try_nack(raw)
        if nack is not None:
            raise HandshakeRefusedError(nack.reason)
        challenge = decode_frame(raw, self._key)
        if not isinstance(challenge.body, Hello) or challenge.body.echo != nonce:
            raise ProtocolError(NackReason.BAD_FORMAT, "reply is not the HELLO answering ours")
        key = session_key(self._key, nonce, challenge.body.nonce)
        proof = Frame(self.serial, self._next_seq(), Hello(self.boot, nonce, challenge.body.nonce))
        writer.write(encode_frame(proof, key))
        async with asyncio.timeout(10):
            raw = await read_frame(reader)
        nack = _try_nack(raw)
        if nack is not None:
            raise HandshakeRefusedError(nack.reason)
        if decode_frame(raw, key).body != Ack(proof.seq):
            raise ProtocolError(NackReason.BAD_FORMAT, "the server did not confirm our proof")
        return key

    def _send(self, body: Body, seq: int | None = None) -> None:
        if self._writer is None or self._session_key is None:
            return
        frame = Frame(self.serial, self._next_seq() if seq is None else seq, body)
        self._writer.write(encode_frame(frame, self._session_key))
        self.stats.sent_frames += 1

    def _send_upload(self, seq: int, body: bytes) -> None:
        self._send(Upload(body), seq)

    async def _handle(self, frame: Frame) -> None:
        match frame.body:
            case Ack(acked_seq=seq):
                if self._pending.pop(seq, None) is not None:
                    self.stats.acked_batches += 1
                    await self._notify_space()
            case Nack(refused_seq=seq, reason=NackReason.UNAVAILABLE):
                self.stats.unavailable_nacks += 1
                self._spawn(self._resend_later(seq))
            case Nack(refused_seq=seq, reason=reason):
                if self._pending.pop(seq, None) is not None:
                    self.stats.rejected.append((seq, reason))
                    log.error("batch rejected", serial=self.serial, seq=seq, reason=reason.name)
                    await self._notify_space()
            case Command() as command:
                self._spawn(self._answer(frame.seq, command))
            case Ping(reply=False):
                self._send(Ping(reply=True))
            case _:
                log.debug("frame ignored", serial=self.serial, type=frame.type.name)

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _resend_later(self, seq: int) -> None:
        await asyncio.sleep(self._resend_delay_s)
        body = self._pending.get(seq)
        if body is not None and self._connected.is_set():
            self.stats.resent_batches += 1
            self._send_upload(seq, body)

    async def _answer(self, command_seq: int, command: Command) -> None:
        try:
            status, detail = await self._on_command(command)
        except Exception as exc:
            log.exception("command handler failed", serial=self.serial, command_seq=command_seq)
            status, detail = CommandStatus.FAILED, f"handler error: {exc!r}"[:200]
        self._send(CommandResult(command_seq, status, detail))

    async def _ping_when_idle(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval_s)
            self._send(Ping())


def _try_nack(raw: bytes) -> Nack | None:
    """A pre-session NACK (tagged with the unauthenticated key), if ``raw`` is one."""
    try:
        frame = decode_frame(raw, UNAUTHENTICATED_KEY)
    except ProtocolError:
        return None
    return frame.body if isinstance(frame.body, Nack) else None
