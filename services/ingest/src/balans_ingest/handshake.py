"""The server side of the HELLO exchange: challenge, then proof, then trust.

docs/protocol.md, "Handshake": the concentrator's HELLO (device key) is answered with a
challenge carrying a fresh server nonce; only the concentrator's proof, its HELLO repeated
with that nonce in ``echo`` and tagged with the session key, shows the peer holds the key
*now*. A HELLO recorded off the wire verifies (its tag never changes) but cannot be
followed by a proof. So :func:`accept_hello` changes nothing outside its own connection:
the caller replaces the live session, opens the command channel and adopts the boot
counter only with the :class:`Proven` it returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from balans_ingest.hellos import RecentHellos
from balans_ingest.keys import ConcentratorKey, KeyStore
from balans_ingest.metrics import FRAMES, HELLO_PROOF_FAILURES, HELLO_REPLAYS
from balans_protocol.auth import NONCE_BYTES, new_nonce, session_key
from balans_protocol.errors import NackReason, ProtocolError
from balans_protocol.frames import Body, FrameType, Hello, decode_frame, peek_header

log = structlog.get_logger("ingest")

ReadFrame = Callable[[], Awaitable[bytes]]
WriteFrame = Callable[[Body, int, bytes], int]  # (body, concentrator, key) -> its seq


@dataclass(frozen=True, slots=True)
class Proven:
    """A peer that proved it holds the concentrator's key in this connection."""

    concentrator: ConcentratorKey
    boot: int
    session_key: bytes
    hello_seq: int  # the concentrator's seq of its HELLO
    proof_seq: int  # and of its proof: batches above it are new in this session


async def accept_hello(
    read: ReadFrame, write: WriteFrame, keys: KeyStore, hellos: RecentHellos
) -> Proven:
    """Run the server's half of the handshake; raise ``ProtocolError`` (the NACK reason)
    when the peer is unknown, replays a HELLO or fails its proof."""
    raw = await read()
    header = peek_header(raw)
    FRAMES.labels(header.type.name).inc()
    if header.type is not FrameType.HELLO:
        raise ProtocolError(NackReason.NOT_AUTHENTICATED, f"{header.type.name} before HELLO")
    concentrator = await keys.for_hello(header.concentrator, raw)
    if concentrator is None:
        raise ProtocolError(NackReason.UNKNOWN_CONCENTRATOR, str(header.concentrator))
    hello = decode_frame(raw, concentrator.device_key).body
    if not isinstance(hello, Hello) or hello.echo != bytes(NONCE_BYTES):
        raise ProtocolError(NackReason.BAD_FORMAT, "a first HELLO carries an all-zero echo")
    if hellos.seen(concentrator.serial, hello.nonce):
        HELLO_REPLAYS.inc()
        log.warning("replayed HELLO refused", serial=concentrator.serial, boot=hello.boot)
        raise ProtocolError(NackReason.REPLAYED, f"HELLO of {concentrator.serial} replayed")
    server_nonce = new_nonce()
    write(
        Hello(hello.boot, server_nonce, echo=hello.nonce),
        concentrator.serial,
        concentrator.device_key,
    )
    key = session_key(concentrator.device_key, hello.nonce, server_nonce)
    expected = Hello(hello.boot, hello.nonce, echo=server_nonce)
    proof_seq = await _proof(read, concentrator.serial, expected, key)
    hellos.remember(concentrator.serial, hello.nonce)
    return Proven(concentrator, hello.boot, key, header.seq, proof_seq)


async def _proof(read: ReadFrame, serial: int, expected: Hello, key: bytes) -> int:
    """The seq of the peer's proof; counts and re-raises whatever stands in its place."""
    try:
        raw = await read()
        header = peek_header(raw)
        FRAMES.labels(header.type.name).inc()
        if header.type is not FrameType.HELLO or header.concentrator != serial:
            raise ProtocolError(
                NackReason.NOT_AUTHENTICATED, f"{header.type.name} instead of the HELLO proof"
            )
        if decode_frame(raw, key).body != expected:
            raise ProtocolError(NackReason.BAD_FORMAT, "the proof does not repeat the exchange")
    except ProtocolError as exc:
        HELLO_PROOF_FAILURES.labels(exc.reason.name.lower()).inc()
        log.warning("HELLO proof failed", serial=serial, reason=exc.reason.name)
        raise
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        HELLO_PROOF_FAILURES.labels("no_proof").inc()
        log.warning("no HELLO proof", serial=serial)
        raise
    return header.seq
