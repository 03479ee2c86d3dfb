"""The EN 13757 CRC-16 (polynomial 0x3D65, initial 0, final XOR 0xFFFF).

Used by the wireless data-link blocks (EN 13757-4), the extended link layer payload CRC
and the compact-frame format signature (EN 13757-3 annex / OMS). A table-driven 20 lines is
smaller than a dependency for one polynomial.
"""

from __future__ import annotations

_POLY = 0x3D65


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ _POLY) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_TABLE = _table()


def crc16_en13757(data: bytes) -> int:
    """CRC-16/EN-13757 of ``data``."""
    crc = 0
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF
