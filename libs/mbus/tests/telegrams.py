"""Telegrams built from the definitions of EN 13757-3 / -4 / -7 and OMS vol. 2, not copied.

Each record is assembled from the standard's tables: the DIF's data field codes (table 4)
and function field, DIFEs for storage, tariff and subunit, primary VIFs with their
exponent ranges (table 10), the orthogonal VIFEs (table 15 and its 0xFC extension), the
data types of annex A (A: BCD, B: signed integer, F: date and time, G: date, H: IEEE-754
real). Frames get a wireless link header (EN 13757-4), a transport header of CI 0x7A
(short) or 0x72/0x73 (long), and optionally security mode 5 (AES-128-CBC, IV = M A ACC x 8,
payload beginning with 2F 2F and padded with 2F) from ``cryptography``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from balans_mbus.crc import crc16_en13757

# DIF data field (EN 13757-3 table 4)
INT8, INT16, INT24, INT32, REAL32, INT48, INT64 = 0x1, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7
BCD2, BCD4, BCD6, BCD8, VARIABLE, BCD12 = 0x9, 0xA, 0xB, 0xC, 0xD, 0xE
_BYTES = {INT8: 1, INT16: 2, INT24: 3, INT32: 4, REAL32: 4, INT48: 6, INT64: 8}
_BCD_BYTES = {BCD2: 1, BCD4: 2, BCD6: 3, BCD8: 4, BCD12: 6}
# DIF function field (bits 5-6)
INSTANTANEOUS, MAXIMUM, MINIMUM, ERROR_STATE = 0, 1, 2, 3
EXTENSION = 0x80
IDLE_FILLER = 0x2F

# Primary VIFs (EN 13757-3 table 10): base code and the exponent its low bits add to.
# unit -> (base, lowest exponent, highest exponent); code = base + (exponent - lowest)
PRIMARY_VIF: dict[str, tuple[int, int, int]] = {
    "Wh": (0x00, -3, 4),  # energy, 10^(nnn-3) Wh
    "J": (0x08, 0, 7),  # energy, 10^nnn J
    "m3": (0x10, -6, 1),  # volume, 10^(nnn-6) m3
    "kg": (0x18, -3, 4),  # mass
    "W": (0x28, -3, 4),  # power, 10^(nnn-3) W
    "J/h": (0x30, 0, 7),  # power, 10^nnn J/h
    "m3/h": (0x38, -6, 1),  # volume flow, 10^(nnn-6) m3/h
    "m3/min": (0x40, -7, 0),
    "flow °C": (0x58, -3, 0),  # flow temperature, 10^(nn-3) °C
    "return °C": (0x5C, -3, 0),  # return temperature
}
VIF_DATE = 0x6C  # type G
VIF_DATETIME = 0x6D  # type F (4 bytes)
VIF_HCA = 0x6E
VIF_PLAIN_TEXT = 0x7C
# Orthogonal VIFEs (EN 13757-3 table 15)
VIFE_ACCUMULATE_POSITIVE = 0x3B  # heating / import (A+)
VIFE_ACCUMULATE_NEGATIVE = 0x3C  # cooling / export (A-)
VIFE_CORRECTION_1E_2 = 0x74  # multiplicative correction factor 10^(nnn-6), nnn = 4
VIFE_COMBINABLE_EXTENSION = 0xFC  # next VIFE from the combinable extension table
PHASE = {"L1": 0x01, "L2": 0x02, "L3": 0x03}

# Device types (EN 13757-3 table 3) and CI fields (EN 13757-3 / OMS)
ELECTRICITY, GAS, HEAT, WARM_WATER, WATER, HOT_WATER, COLD_WATER = (
    0x02, 0x03, 0x04, 0x06, 0x07, 0x15, 0x16,
)  # fmt: skip
CI_SHORT, CI_SHORT_COMPACT, CI_LONG, CI_LONG_COMPACT = 0x7A, 0x7B, 0x72, 0x73
SND_NR = 0x44


def vif(unit: str, exponent: int) -> int:
    """The primary VIF of ``unit`` with decimal ``exponent``."""
    base, lowest, highest = PRIMARY_VIF[unit]
    if not lowest <= exponent <= highest:
        raise ValueError(f"{unit} has exponents {lowest}..{highest}, not {exponent}")
    return base + exponent - lowest


def dif_header(data_field: int, *, function: int = 0, storage: int = 0, tariff: int = 0,
               subunit: int = 0) -> bytes:  # fmt: skip
    """DIF and DIFEs: storage bit 0 in the DIF, the rest 4/2/1 bits per DIFE."""
    out = [data_field | function << 4 | (storage & 1) << 6]
    storage >>= 1
    while storage or tariff or subunit:
        out[-1] |= EXTENSION
        out.append((storage & 0x0F) | (tariff & 0x03) << 4 | (subunit & 0x01) << 6)
        storage, tariff, subunit = storage >> 4, tariff >> 2, subunit >> 1
    return bytes(out)


def vif_header(code: int, *vifes: int) -> bytes:
    """VIF and VIFEs with their extension bits set."""
    chain = [code, *vifes]
    return bytes(byte | EXTENSION if i < len(chain) - 1 else byte for i, byte in enumerate(chain))


def plain_text_vif(unit: str, *vifes: int) -> bytes:
    """VIF 0x7C / 0xFC, the length and the unit (last character first), then VIFEs."""
    text = bytes([len(unit)]) + unit.encode("ascii")[::-1]
    if not vifes:
        return bytes([VIF_PLAIN_TEXT]) + text
    return bytes([VIF_PLAIN_TEXT | EXTENSION]) + text + vif_header(*vifes)


def integer(value: int, data_field: int) -> bytes:
    """Type B: signed binary integer, little endian."""
    return value.to_bytes(_BYTES[data_field], "little", signed=True)


def bcd(value: int, data_field: int) -> bytes:
    """Type A: BCD digits, least significant byte first."""
    digits = str(value).zfill(2 * _BCD_BYTES[data_field])
    return bytes.fromhex(digits)[::-1]


def real32(value: float) -> bytes:
    """Type H: IEEE-754 single precision, little endian."""
    return struct.pack("<f", value)


def type_f(moment: datetime, *, invalid: bool = False, every_day: bool = False) -> bytes:
    """Type F (CP32) date and time; ``every_day`` writes the periodic day marker 0.

    Hundred years (HY) stay 0: years 1981-2080 need no more.
    """
    if not 1981 <= moment.year <= 2080:
        raise ValueError("type F without hundred years covers 1981-2080")
    year = moment.year % 100
    day = 0 if every_day else moment.day
    return bytes(
        [
            moment.minute | (0x80 if invalid else 0),
            moment.hour,
            day | (year & 0x07) << 5,
            moment.month | (year >> 3) << 4,
        ]
    )


def type_g(day: date) -> bytes:
    """Type G (CP16) date."""
    year = day.year % 100
    return bytes([day.day | (year & 0x07) << 5, day.month | (year >> 3) << 4])


def record(dif: bytes, vib: bytes, data: bytes) -> bytes:
    return dif + vib + data


@dataclass(frozen=True)
class Meter:
    """A meter's address: manufacturer, id, version, device type (medium)."""

    manufacturer: str
    device_id: str
    version: int
    device_type: int

    def address(self) -> bytes:
        """M(2) A(ID 4 BCD, VER, TYPE) as sent in the link and long transport header."""
        letters = [ord(char) - 64 for char in self.manufacturer]
        m_field = letters[0] << 10 | letters[1] << 5 | letters[2]
        return (
            m_field.to_bytes(2, "little")
            + bytes.fromhex(self.device_id)[::-1]
            + bytes([self.version, self.device_type])
        )


def _config(mode: int, blocks: int) -> bytes:
    return (mode << 8 | blocks << 4).to_bytes(2, "little")


def encrypt_mode5(key: bytes, address: bytes, access: int, plain: bytes) -> tuple[bytes, int]:
    """AES-128-CBC of ``plain`` (which begins with 2F 2F), padded with 2F to whole blocks."""
    padded = plain + bytes([IDLE_FILLER]) * (-len(plain) % 16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(address + bytes([access]) * 8)).encryptor()
    return encryptor.update(padded) + encryptor.finalize(), len(padded) // 16


def wireless_frame(meter: Meter, ci: int, transport: bytes, payload: bytes) -> bytes:
    """L C M A CI transport-header payload, block CRCs already removed (as receivers forward)."""
    body = bytes([SND_NR]) + meter.address() + bytes([ci]) + transport + payload
    return bytes([len(body)]) + body


def short_frame(meter: Meter, records: bytes, *, access: int = 0x10, key: bytes | None = None
                ) -> bytes:  # fmt: skip
    """CI 0x7A: ACC ST CFG, then 2F 2F and the records (encrypted in mode 5 with ``key``)."""
    plain = bytes([IDLE_FILLER, IDLE_FILLER]) + records
    if key is None:
        return wireless_frame(meter, CI_SHORT, bytes([access, 0]) + _config(0, 0), plain)
    cipher, blocks = encrypt_mode5(key, meter.address(), access, plain)
    return wireless_frame(meter, CI_SHORT, bytes([access, 0]) + _config(5, blocks), cipher)


def short_compact_frame(meter: Meter, payload: bytes, *, access: int = 0x11) -> bytes:
    """CI 0x7B, unencrypted: the compact payload right after the short header."""
    return wireless_frame(meter, CI_SHORT_COMPACT, bytes([access, 0]) + _config(0, 0), payload)


def _long_header(meter: Meter, access: int, mode: int, blocks: int) -> bytes:
    address = meter.address()
    return address[2:6] + address[0:2] + address[6:8] + bytes([access, 0]) + _config(mode, blocks)


def long_frame(meter: Meter, ci: int, plain: bytes, *, access: int, key: bytes) -> bytes:
    """CI 0x72 / 0x73 with the meter's address in the transport header, mode 5 encrypted.

    The wireless link header is a radio converter's (another address), as when a wired
    meter's data is sent on by a converter: the IV then takes the transport header's address.
    """
    converter = Meter("ABC", "99999999", 1, 0x37)
    cipher, blocks = encrypt_mode5(key, meter.address(), access, plain)
    return wireless_frame(converter, ci, _long_header(meter, access, 5, blocks), cipher)


def compact_payload(headers: bytes, records: bytes, compact_data: bytes) -> bytes:
    """Format signature (CRC of the DIF/VIF headers) and data CRC (of the full records),
    little endian, then the data without headers (OMS vol. 2 compact frame)."""
    return (
        crc16_en13757(headers).to_bytes(2, "little")
        + crc16_en13757(records).to_bytes(2, "little")
        + compact_data
    )
