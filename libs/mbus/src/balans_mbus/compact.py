"""Compact frames (CI 0x79/0x7B/0x73): records without their DIF/VIF headers.

A meter sends its full frame now and then and compact frames in between; a compact frame
carries only the CRC-16 of the header sequence (the *format signature*) and the data. The
receiver must have learnt the header sequence from an earlier full frame of the same meter
type (or have it configured). :class:`FormatCache` keeps what was learnt.
"""

from __future__ import annotations

from collections.abc import Iterable

from balans_mbus.crc import crc16_en13757
from balans_mbus.dif import IDLE_FILLER, HeaderError, data_length, header_end, is_special


class FormatError(Exception):
    """A header sequence or compact data that cannot be expanded."""


def format_signature(headers: bytes) -> int:
    """The format signature of a DIF/VIF header sequence."""
    return crc16_en13757(headers)


class FormatCache:
    """Header sequences by format signature, learnt from full frames or configured."""

    def __init__(self, formats: Iterable[bytes] = ()) -> None:
        self._by_signature: dict[int, bytes] = {}
        for headers in formats:
            self.learn(headers)

    def learn(self, headers: bytes) -> int:
        """Remember ``headers`` and return its signature."""
        signature = format_signature(headers)
        self._by_signature[signature] = bytes(headers)
        return signature

    def get(self, signature: int) -> bytes | None:
        return self._by_signature.get(signature)

    def items(self) -> list[tuple[int, bytes]]:
        """(signature, headers) pairs, e.g. to persist them."""
        return sorted(self._by_signature.items())

    def __len__(self) -> int:
        return len(self._by_signature)


def _split_headers(headers: bytes) -> list[tuple[bytes, int]]:
    """Cut a header sequence into (DIF..VIFE bytes, DIF)."""
    out: list[tuple[bytes, int]] = []
    pos = 0
    while pos < len(headers):
        if is_special(headers[pos]):
            raise FormatError("manufacturer-specific or idle DIF in a compact format")
        try:
            end = header_end(headers, pos)
        except HeaderError as exc:
            raise FormatError(str(exc)) from exc
        out.append((headers[pos:end], headers[pos]))
        pos = end
    return out


def expand(headers: bytes, data: bytes) -> bytes:
    """Interleave a header sequence with compact data into ordinary data records."""
    out = bytearray()
    pos = 0
    for header, dif in _split_headers(headers):
        try:
            length = data_length(dif, data, pos)
        except HeaderError as exc:
            raise FormatError(str(exc)) from exc
        if pos + length > len(data):
            raise FormatError("compact data shorter than its format")
        out += header + data[pos : pos + length]
        pos += length
    if any(byte != IDLE_FILLER for byte in data[pos:]):
        raise FormatError(f"{len(data) - pos} compact data bytes beyond the format")
    return bytes(out)
