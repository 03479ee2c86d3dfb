"""Decoder behaviour beyond the corpus: link CRC shapes, security, compact frames, failures."""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from balans_mbus.compact import FormatCache
from balans_mbus.crc import crc16_en13757
from balans_mbus.decoder import decode_telegram
from balans_mbus.model import DecodeFailure
from balans_mbus.security import ell_crypt, ell_iv

# Kamstrup Multical 21-type heat meter: ELL 0x8D (session marked encrypted, payload in clear)
# then a full frame (CI 0x78) and a compact frame (CI 0x79) of the same format.
KAMSTRUP_FULL = bytes.fromhex(
    "2E442D2C6767676730048D2039D1684020BCDB7803062C000043060000000314630000426C7F2A022D130001FF2100"
)
KAMSTRUP_COMPACT = bytes.fromhex(
    "25442D2C6767676730048D203AD2684020D81579E7F1D5902C00000000006300007F2A130000"
)
# Wired long frame of an Apator heat meter (RSP_UD, CI 0x72).
WIRED = bytes.fromhex(
    "684E4E680801722804172301064204550000000C7828041723026C103902FD1700000E0A6342693401000C"
    "13634630000A3B00000A2D00000A5A49020A5E44020C22762101003C2215000000047E170900004116"
)
# A short-header (CI 0x7A) plaintext frame: DIF/VIF records after 0x2F2F.
KEY = bytes(range(16))


def _format_a(plain: bytes) -> bytes:
    """Add EN 13757-4 format A block CRCs to a frame whose CRCs were stripped."""
    blocks = [plain[:10]] + [plain[i : i + 16] for i in range(10, len(plain), 16)]
    out = bytearray()
    for block in blocks:
        out += block + crc16_en13757(block).to_bytes(2, "big")
    return bytes(out)  # format A's L field does not count the CRCs


def _format_b(plain: bytes) -> bytes:
    """Add the single format B CRC of a frame shorter than 126 bytes (L counts the CRC)."""
    body = bytes([len(plain) + 1]) + plain[1:]
    return body + crc16_en13757(body).to_bytes(2, "big")


def test_format_a_and_b_crcs_are_checked_and_stripped() -> None:
    """Format A and B frames decode like the CRC-less frame; a flipped bit is a bad CRC."""
    plain = decode_telegram(KAMSTRUP_FULL)
    assert decode_telegram(_format_a(KAMSTRUP_FULL)).values == plain.values
    assert decode_telegram(_format_b(KAMSTRUP_FULL)).values == plain.values
    corrupted = bytearray(_format_a(KAMSTRUP_FULL))
    corrupted[20] ^= 0x01
    assert decode_telegram(bytes(corrupted)).failure is DecodeFailure.BAD_CRC


def test_wired_long_frame_and_its_checksum() -> None:
    """A wired RSP_UD decodes with its TPL address; a wrong checksum is refused."""
    decoded = decode_telegram(WIRED)
    assert decoded.ok
    assert decoded.frame == "wired"
    assert decoded.header is not None
    assert (decoded.header.manufacturer, decoded.header.id) == ("APA", "23170428")
    assert decoded.values.energy_kwh is not None
    broken = WIRED[:-2] + bytes([(WIRED[-2] + 1) & 0xFF]) + WIRED[-1:]
    assert decode_telegram(broken).failure is DecodeFailure.BAD_CHECKSUM


def test_compact_frame_needs_a_learnt_format() -> None:
    """A compact frame alone names its unknown signature; after the full frame it decodes."""
    alone = decode_telegram(KAMSTRUP_COMPACT)
    assert alone.failure is DecodeFailure.UNKNOWN_FORMAT
    assert alone.header is not None
    assert alone.header.id == "67676767"
    formats = FormatCache()
    full = decode_telegram(KAMSTRUP_FULL, formats=formats)
    compact = decode_telegram(KAMSTRUP_COMPACT, formats=formats)
    assert compact.ok
    assert compact.transport is not None
    assert compact.transport.compact_format_signature == 0xF1E7
    assert compact.values == full.values


def _short_tpl_frame(records: bytes, *, mode: int, access: int, blocks: int) -> bytes:
    """A wireless frame KAM 12345678 v1 heat meter, CI 0x7A, with the given security."""
    address = bytes.fromhex("2D2C") + bytes.fromhex("78563412") + bytes([0x01, 0x04])
    config = (mode << 8) | (blocks << 4)
    body = bytes([0x44]) + address + bytes([0x7A, access, 0x00]) + config.to_bytes(2, "little")
    return bytes([len(body) + len(records)]) + body + records


def _encrypt_mode5(records: bytes, access: int) -> tuple[bytes, int]:
    padded = records + b"\x2f" * (-len(records) % 16)
    iv = bytes.fromhex("2D2C7856341201 04".replace(" ", "")) + bytes([access]) * 8
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize(), len(padded) // 16


RECORDS = bytes.fromhex("2F2F0C06123456000C14785634120B2D150000")  # energy, volume, power


def test_mode5_decrypts_with_the_right_key_only() -> None:
    """Mode 5: the right key decodes, none is key_missing, a wrong one decryption_failed."""
    cipher, blocks = _encrypt_mode5(RECORDS, access=0x42)
    frame = _short_tpl_frame(cipher, mode=5, access=0x42, blocks=blocks)
    decoded = decode_telegram(frame, KEY)
    assert decoded.ok
    assert decoded.transport is not None
    assert decoded.transport.decrypted
    assert decoded.values.energy_kwh == 563412.0
    assert decoded.values.volume_m3 == 123456.78
    assert decoded.values.power_kw == 1.5
    assert decode_telegram(frame).failure is DecodeFailure.KEY_MISSING
    assert decode_telegram(frame, bytes(16)).failure is DecodeFailure.DECRYPTION_FAILED
    assert decode_telegram(frame, b"short").failure is DecodeFailure.BAD_KEY


def test_ell_session_encryption_round_trip() -> None:
    """An ELL payload encrypted with AES-CTR decodes with the key and is refused without."""
    head, crc_and_payload = KAMSTRUP_FULL[:17], KAMSTRUP_FULL[17:]
    iv = ell_iv(KAMSTRUP_FULL[2:10], communication_control=0x20, session_number=head[13:17])
    frame = head + ell_crypt(KEY, iv, crc_and_payload)
    decoded = decode_telegram(frame, KEY)
    assert decoded.ok
    assert decoded.transport is not None
    assert decoded.transport.decrypted
    assert decoded.values == decode_telegram(KAMSTRUP_FULL).values
    assert decode_telegram(frame).failure is DecodeFailure.KEY_MISSING
    assert decode_telegram(frame, bytes(16)).failure is DecodeFailure.DECRYPTION_FAILED


def test_one_unreadable_record_does_not_cost_the_others() -> None:
    """An invalid BCD record is reported in the reason; the records around it still count."""
    records = bytes.fromhex("2F2F0B6E6601004B2DFFFFFF0C13785634120A5A4902")
    decoded = decode_telegram(_short_tpl_frame(records, mode=0, access=1, blocks=0))
    assert decoded.ok
    assert decoded.values.hca_units == 166
    assert decoded.values.volume_m3 == 12345.678
    assert decoded.values.flow_temperature_c == 24.9
    assert decoded.reason is not None
    assert "4B2DFFFFFF" in decoded.reason


def test_manufacturer_specific_ci_is_a_clean_failure() -> None:
    """CI 0xA0..0xB7 payloads are refused with a reason, keeping the sender's address."""
    frame = bytes.fromhex("19440186313737370408A0A1000059001C270100322DE413B415")
    decoded = decode_telegram(frame)
    assert not decoded.ok
    assert decoded.failure is DecodeFailure.MANUFACTURER_SPECIFIC
    assert decoded.header is not None
    assert decoded.header.id == "37373731"
