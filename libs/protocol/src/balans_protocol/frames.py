"""Frames of the concentrator wire protocol: pure encode/decode, no I/O.

Layout (big-endian), specified with test vectors in docs/protocol.md::

    length u32 | version u8 | type u8 | flags u16 | concentrator u64 | seq u32 | body | tag[16]

``length`` counts every byte after itself. ``tag`` is HMAC-SHA256 (truncated to 16 bytes)
over everything before it, under the device key (HELLO) or the session key (all else).
Any byte string given to :func:`decode_frame` yields a :class:`Frame` or raises
:class:`ProtocolError`; :class:`FrameSplitter` refuses an oversized length prefix before
it buffers a byte of the frame.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, TypeVar

from balans_protocol.auth import NONCE_BYTES, TAG_BYTES, tag, tag_matches
from balans_protocol.errors import NackReason, ProtocolError
from balans_protocol.records import Record, decode_records, encode_records, split_sections

VERSION = 2  # 2: the HELLO exchange ends with the concentrator's proof (docs/protocol.md)
HEADER = struct.Struct(">IBBHQI")
LENGTH = struct.Struct(">I")
MIN_FRAME_BYTES = HEADER.size + TAG_BYTES
MAX_FRAME_BYTES = 256 * 1024  # whole frame, length prefix and tag included
MAX_DETAIL_BYTES = 255


class FrameType(IntEnum):
    HELLO = 1
    UPLOAD = 2
    ACK = 3
    NACK = 4
    COMMAND = 5
    COMMAND_RESULT = 6
    PING = 7


class CommandAction(IntEnum):
    """What a COMMAND asks a module to do (mirrors ``CommandRequest.action``)."""

    VALVE_CLOSE = 1
    VALVE_OPEN = 2
    RELAY_OFF = 3
    RELAY_ON = 4
    PING = 5


class CommandStatus(IntEnum):
    DONE = 0
    FAILED = 1


@dataclass(frozen=True, slots=True)
class Hello:
    """Handshake, three HELLOs. The concentrator sends its boot counter and a nonce
    (``echo`` all zero); the server challenges with the same boot counter, its own nonce
    and the client's nonce in ``echo`` (both tagged with the device key); the concentrator
    proves it holds the key now by repeating its HELLO with the server's nonce in ``echo``,
    tagged with the session key both derived."""

    boot: int  # u32, incremented (and persisted) by the concentrator at every start
    nonce: bytes  # 16 random bytes: the sender's own (the proof repeats the client's)
    echo: bytes = bytes(NONCE_BYTES)  # the peer's nonce (challenge, proof) or zeros (client)


@dataclass(frozen=True, slots=True)
class Upload:
    """A batch of records; ``payload`` is the encoded body (see records.py)."""

    payload: bytes

    @classmethod
    def of(cls, records: Iterable[Record]) -> Upload:
        return cls(encode_records(records))

    @property
    def records(self) -> list[Record]:
        return decode_records(self.payload)


@dataclass(frozen=True, slots=True)
class Ack:
    """The server stored the UPLOAD with sequence ``acked_seq``; the concentrator may drop it."""

    acked_seq: int


@dataclass(frozen=True, slots=True)
class Nack:
    """The frame with sequence ``refused_seq`` (0 if unknown) was refused for ``reason``."""

    refused_seq: int
    reason: NackReason


@dataclass(frozen=True, slots=True)
class Command:
    """Downlink: run ``action`` on a module (input for valves/relays on pulse inputs)."""

    module: int
    action: CommandAction
    input: int = 0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The concentrator's answer to the COMMAND with sequence ``command_seq``."""

    command_seq: int
    status: CommandStatus
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Ping:
    """Keep-alive; the receiver of a request (``reply`` False) answers with ``reply`` True."""

    reply: bool = False


Body = Hello | Upload | Ack | Nack | Command | CommandResult | Ping


@dataclass(frozen=True, slots=True)
class Frame:
    concentrator: int  # u64 concentrator serial
    seq: int  # u32, sender's sequence number (see docs/protocol.md, "Sequence numbers")
    body: Body

    @property
    def type(self) -> FrameType:
        return _TYPE_OF[type(self.body)]


@dataclass(frozen=True, slots=True)
class Header:
    """What can be read from a frame before its key is known."""

    length: int
    type: FrameType
    concentrator: int
    seq: int


_TYPE_OF: dict[type, FrameType] = {
    Hello: FrameType.HELLO,
    Upload: FrameType.UPLOAD,
    Ack: FrameType.ACK,
    Nack: FrameType.NACK,
    Command: FrameType.COMMAND,
    CommandResult: FrameType.COMMAND_RESULT,
    Ping: FrameType.PING,
}
_HELLO = struct.Struct(f">I{NONCE_BYTES}s{NONCE_BYTES}s")
_SEQ = struct.Struct(">I")
_NACK = struct.Struct(">IB")
_COMMAND = struct.Struct(">IBB")
_COMMAND_RESULT = struct.Struct(">IBB")
_PING = struct.Struct(">B")


def _encode_body(body: Body) -> bytes:
    match body:
        case Hello():
            if len(body.nonce) != NONCE_BYTES or len(body.echo) != NONCE_BYTES:
                raise ValueError("HELLO nonces are 16 bytes")
            return _HELLO.pack(body.boot, body.nonce, body.echo)
        case Upload():
            return body.payload
        case Ack():
            return _SEQ.pack(body.acked_seq)
        case Nack():
            return _NACK.pack(body.refused_seq, body.reason)
        case Command():
            return _COMMAND.pack(body.module, body.action, body.input)
        case CommandResult():
            detail = body.detail.encode()
            if len(detail) > MAX_DETAIL_BYTES:
                raise ValueError("COMMAND_RESULT detail exceeds 255 bytes of UTF-8")
            return _COMMAND_RESULT.pack(body.command_seq, body.status, len(detail)) + detail
        case Ping():
            return _PING.pack(1 if body.reply else 0)
    raise TypeError(f"not a frame body: {body!r}")


def encode_frame(frame: Frame, key: bytes) -> bytes:
    """The bytes of ``frame``, tagged with ``key``. Raises ``ValueError`` on a field
    outside its wire range or a frame above ``MAX_FRAME_BYTES``."""
    body = _encode_body(frame.body)
    length = HEADER.size - LENGTH.size + len(body) + TAG_BYTES
    if length + LENGTH.size > MAX_FRAME_BYTES:
        raise ValueError(f"frame of {length + LENGTH.size} bytes exceeds {MAX_FRAME_BYTES}")
    try:
        head = HEADER.pack(length, VERSION, frame.type, 0, frame.concentrator, frame.seq)
    except struct.error as exc:
        raise ValueError(f"header field out of range: {exc}") from exc
    signed = head + body
    return signed + tag(key, signed)


def frame_length(data: bytes | bytearray | memoryview, offset: int = 0) -> int:
    """Total size of the frame starting at ``offset``, from its 4-byte length prefix;
    ``OVERSIZE`` if out of bounds."""
    (length,) = LENGTH.unpack_from(data, offset)
    total = length + LENGTH.size
    if total > MAX_FRAME_BYTES or total < MIN_FRAME_BYTES:
        raise ProtocolError(NackReason.OVERSIZE, f"length prefix {length}")
    return total


def peek_header(data: bytes | memoryview) -> Header:
    """Parse the header of a complete frame without checking its tag."""
    if len(data) < MIN_FRAME_BYTES:
        raise ProtocolError(NackReason.BAD_FORMAT, f"{len(data)} bytes is shorter than a frame")
    total = frame_length(data)
    if total != len(data):
        raise ProtocolError(NackReason.BAD_FORMAT, f"length prefix {total} != {len(data)} bytes")
    _, version, raw_type, flags, concentrator, seq = HEADER.unpack_from(data)
    if version != VERSION:
        raise ProtocolError(NackReason.UNSUPPORTED_VERSION, f"version {version}")
    if flags:
        raise ProtocolError(NackReason.BAD_FORMAT, f"reserved header flags {flags:#x}")
    try:
        frame_type = FrameType(raw_type)
    except ValueError:
        raise ProtocolError(NackReason.BAD_FORMAT, f"unknown frame type {raw_type}") from None
    return Header(total, frame_type, concentrator, seq)


def _exact(layout: struct.Struct, body: memoryview, name: str) -> tuple[Any, ...]:
    if len(body) != layout.size:
        raise ProtocolError(NackReason.BAD_FORMAT, f"{name} body of {len(body)} bytes")
    return layout.unpack(body)


def _decode_body(frame_type: FrameType, body: memoryview) -> Body:
    match frame_type:
        case FrameType.HELLO:
            boot, nonce, echo = _exact(_HELLO, body, "HELLO")
            return Hello(int(boot), bytes(nonce), bytes(echo))
        case FrameType.UPLOAD:
            split_sections(body)
            return Upload(bytes(body))
        case FrameType.ACK:
            (acked,) = _exact(_SEQ, body, "ACK")
            return Ack(int(acked))
        case FrameType.NACK:
            refused, reason = _exact(_NACK, body, "NACK")
            return Nack(int(refused), _enum(NackReason, reason, "NACK reason"))
        case FrameType.COMMAND:
            module, action, channel = _exact(_COMMAND, body, "COMMAND")
            return Command(int(module), _enum(CommandAction, action, "action"), int(channel))
        case FrameType.COMMAND_RESULT:
            return _decode_command_result(body)
        case FrameType.PING:
            (reply,) = _exact(_PING, body, "PING")
            if reply not in (0, 1):
                raise ProtocolError(NackReason.BAD_FORMAT, f"PING reply flag {reply!r}")
            return Ping(reply == 1)
    raise ProtocolError(NackReason.BAD_FORMAT, f"unknown frame type {frame_type}")


_E = TypeVar("_E", bound=IntEnum)


def _enum(enum: type[_E], value: int, name: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        raise ProtocolError(NackReason.BAD_FORMAT, f"unknown {name} {value!r}") from None


def _decode_command_result(body: memoryview) -> CommandResult:
    if len(body) < _COMMAND_RESULT.size:
        raise ProtocolError(NackReason.BAD_FORMAT, "truncated COMMAND_RESULT")
    command_seq, status, detail_len = _COMMAND_RESULT.unpack_from(body)
    detail = body[_COMMAND_RESULT.size :]
    if len(detail) != detail_len:
        raise ProtocolError(NackReason.BAD_FORMAT, "COMMAND_RESULT detail length mismatch")
    try:
        text = bytes(detail).decode()
    except UnicodeDecodeError:
        raise ProtocolError(NackReason.BAD_FORMAT, "COMMAND_RESULT detail is not UTF-8") from None
    return CommandResult(command_seq, _enum(CommandStatus, status, "command status"), text)


def verify_tag(data: bytes | memoryview, key: bytes) -> None:
    """Raise ``BAD_TAG`` unless the frame's tag verifies under ``key``."""
    view = memoryview(data)
    if not tag_matches(key, view[:-TAG_BYTES], view[-TAG_BYTES:]):
        raise ProtocolError(NackReason.BAD_TAG)


def decode_frame(data: bytes | memoryview, key: bytes) -> Frame:
    """Verify and decode one complete frame (as cut by :class:`FrameSplitter`)."""
    header = peek_header(data)
    verify_tag(data, key)
    body = memoryview(data)[HEADER.size : -TAG_BYTES]
    return Frame(header.concentrator, header.seq, _decode_body(header.type, body))


class FrameSplitter:
    """Cuts a byte stream into frames. The length prefix is checked before anything of
    the frame is kept, so a hostile prefix cannot make the buffer grow beyond one
    maximal frame plus one read."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Append received bytes; return the complete frames now available (maybe none).

        Raises ``ProtocolError(OVERSIZE)`` on an out-of-bounds length prefix; the stream
        cannot be resynchronised after that, so the connection should be closed."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        offset = 0
        while len(buffer) - offset >= LENGTH.size:
            total = frame_length(buffer, offset)
            if len(buffer) - offset < total:
                break
            frames.append(bytes(buffer[offset : offset + total]))
            offset += total
        if offset:
            del buffer[:offset]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a frame."""
        return len(self._buffer)
