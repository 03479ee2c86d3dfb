"""Data-link layer: find the application bytes of a wired (EN 13757-2) or wireless
(EN 13757-4) frame and the address of the sender.

Wireless frames arrive in three shapes: with format A block CRCs, with format B CRCs, or with
the CRCs already removed by the receiver (what most dongles and concentrators forward).
"""

from __future__ import annotations

from dataclasses import dataclass

from balans_mbus.crc import crc16_en13757
from balans_mbus.device_types import device_type_name
from balans_mbus.model import DecodeFailure, DeviceHeader

_WIRED_START = 0x68
_WIRED_STOP = 0x16
_WIRELESS_HEADER = 10  # L C M M A A A A A A
_FORMAT_A_BLOCK = 16
_FORMAT_B_FIRST = 126  # blocks 1+2 of format B end with a CRC after this many bytes


class LinkError(Exception):
    """A frame the link layer cannot accept; carries the failure code for the result."""

    def __init__(self, failure: DecodeFailure, reason: str) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LinkFrame:
    """The application part of a frame (from the CI field on) and who sent it."""

    kind: str  # "wired" | "wireless"
    c_field: int
    app: bytes
    # Wireless only: M field + A field (8 bytes) as sent, the AES-IV prefix of mode 5.
    address: bytes | None = None
    header: DeviceHeader | None = None


def manufacturer_code(value: int) -> str:
    """The three-letter FLAG code packed into 15 bits (EN 13757-3, 'M field')."""
    return "".join(chr(((value >> shift) & 0x1F) + 64) for shift in (10, 5, 0))


def device_header(address: bytes) -> DeviceHeader:
    """Decode the 8 address bytes M(2) ID(4, BCD little-endian) VER TYPE."""
    device_type = address[7]
    return DeviceHeader(
        manufacturer=manufacturer_code(int.from_bytes(address[0:2], "little")),
        id=address[5:1:-1].hex().upper(),
        version=address[6],
        device_type=device_type,
        device_type_name=device_type_name(device_type),
    )


def parse_link(frame: bytes) -> LinkFrame:
    """Split ``frame`` into link header and application bytes; raises :class:`LinkError`."""
    if not frame:
        raise LinkError(DecodeFailure.EMPTY, "empty telegram")
    if frame[0] == _WIRED_START and len(frame) >= 4 and frame[3] == _WIRED_START:
        return _parse_wired(frame)
    return _parse_wireless(frame)


def _parse_wired(frame: bytes) -> LinkFrame:
    length = frame[1]
    if frame[2] != length:
        raise LinkError(DecodeFailure.BAD_LENGTH, "wired long frame: the two L fields differ")
    if len(frame) != length + 6:
        raise LinkError(
            DecodeFailure.BAD_LENGTH,
            f"wired long frame: L={length} needs {length + 6} bytes, got {len(frame)}",
        )
    if frame[-1] != _WIRED_STOP:
        raise LinkError(DecodeFailure.BAD_LENGTH, "wired long frame: no stop byte 0x16")
    body = frame[4:-2]
    if sum(body) & 0xFF != frame[-2]:
        raise LinkError(DecodeFailure.BAD_CHECKSUM, "wired long frame: checksum mismatch")
    if len(body) < 3:
        raise LinkError(DecodeFailure.TRUNCATED, "wired long frame without a CI field")
    return LinkFrame(kind="wired", c_field=body[0], app=body[2:])


def _parse_wireless(frame: bytes) -> LinkFrame:
    if len(frame) < _WIRELESS_HEADER + 1:
        raise LinkError(DecodeFailure.TRUNCATED, f"wireless frame of {len(frame)} bytes")
    plain = _strip_block_crcs(frame)
    address = plain[2:_WIRELESS_HEADER]
    return LinkFrame(
        kind="wireless",
        c_field=plain[1],
        app=plain[_WIRELESS_HEADER:],
        address=address,
        header=device_header(address),
    )


def _strip_block_crcs(frame: bytes) -> bytes:
    """Return L..payload without block CRCs, whichever of the three shapes ``frame`` has."""
    length = frame[0]
    if len(frame) == length + 1:
        without_b = _strip_format_b(frame)
        return without_b if without_b is not None else frame
    payload_after_header = length + 1 - _WIRELESS_HEADER
    blocks = -(-payload_after_header // _FORMAT_A_BLOCK)
    if len(frame) == length + 1 + 2 * (blocks + 1):
        return _strip_format_a(frame)
    raise LinkError(
        DecodeFailure.BAD_LENGTH,
        f"wireless frame: L={length} does not fit {len(frame)} bytes "
        "(neither plain, format A nor format B)",
    )


def _check_block(block: bytes, crc: bytes) -> None:
    if crc16_en13757(block) != int.from_bytes(crc, "big"):
        raise LinkError(DecodeFailure.BAD_CRC, "wireless frame: block CRC mismatch")


def _strip_format_a(frame: bytes) -> bytes:
    out = bytearray()
    _check_block(frame[:_WIRELESS_HEADER], frame[_WIRELESS_HEADER : _WIRELESS_HEADER + 2])
    out += frame[:_WIRELESS_HEADER]
    pos = _WIRELESS_HEADER + 2
    while pos < len(frame):
        block = frame[pos : min(pos + _FORMAT_A_BLOCK, len(frame) - 2)]
        crc = frame[pos + len(block) : pos + len(block) + 2]
        _check_block(block, crc)
        out += block
        pos += len(block) + 2
    return bytes(out)  # format A's L field never counted the CRCs


def _strip_format_b(frame: bytes) -> bytes | None:
    """Format B keeps its CRCs inside L; ``None`` when the CRCs do not check out."""
    first_end = min(len(frame), _FORMAT_B_FIRST + 2) - 2
    if first_end <= _WIRELESS_HEADER:
        return None
    if crc16_en13757(frame[:first_end]) != int.from_bytes(frame[first_end : first_end + 2], "big"):
        return None
    out = bytearray(frame[:first_end])
    rest = frame[first_end + 2 :]
    if rest:
        if len(rest) < 3 or crc16_en13757(rest[:-2]) != int.from_bytes(rest[-2:], "big"):
            return None
        out += rest[:-2]
    out[0] = len(out) - 1
    return bytes(out)
