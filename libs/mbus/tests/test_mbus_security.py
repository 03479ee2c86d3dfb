"""OMS security mode 7 (KDF-A, AES-CMAC AFL MAC, AES-CBC IV 0) and the compact frame data CRC.

The mode 7 vector is the gas meter example of OMS vol. 2 annex N (security profile B,
ELS 12345678, key 00 01 .. 0F, 28504.27 m3), as used by the test suites of independent
decoders (jMBus' ``VariableDataStructureTest``, a TypeScript wM-Bus decoder that also
rejects the telegram with one MAC byte changed).
"""

from __future__ import annotations

import pytest

from balans_mbus.compact import FormatCache
from balans_mbus.decoder import decode_telegram
from balans_mbus.model import DecodeFailure

OMS_KEY = bytes(range(16))
OMS_GAS_MODE7 = bytes.fromhex(
    "434493157856341233038C2075900F002C25B30A000021924D4F2FB66E017A75002007109058475F4BC9"
    "1DF878B80A1B0F98B629024AAC727942BFC549233C0140829B93"
)
# The same telegram as sent on air: format A with its block CRCs.
OMS_GAS_MODE7_FORMAT_A = bytes.fromhex(
    "434493157856341233037AC98C2075900F002C25B30A000021924D4FBA372FB66E017A75002007109058"
    "475F4BC9D1281DF878B80A1B0F98B629024AAC7279429398BFC549233C0140829B93BAA1"
)
MAC_AT = 22  # link header 10, ELL 3, AFL CI L FC MCL MCR 9: then the 8 MAC bytes, then TPL

# Kamstrup full frame (teaches the format) and the compact records of a later telegram,
# sent here behind a plain link header (CI 0x79) so nothing but the data CRC guards them.
KAMSTRUP_FULL = bytes.fromhex(
    "2E442D2C6767676730048D2039D1684020BCDB7803062C000043060000000314630000426C7F2A022D130001FF2100"
)
COMPACT_PAYLOAD = bytes.fromhex("E7F1D5902C00000000006300007F2A130000")


def _compact_frame(payload: bytes) -> bytes:
    body = bytes.fromhex("442D2C676767673004") + b"\x79" + payload
    return bytes([len(body)]) + body


def test_oms_annex_mode7_example_decrypts_and_authenticates() -> None:
    """The OMS annex N mode 7 telegram: MAC verified, decrypted, 28504.27 m3 read."""
    for telegram in (OMS_GAS_MODE7, OMS_GAS_MODE7_FORMAT_A):
        decoded = decode_telegram(telegram, OMS_KEY)
        assert decoded.ok, decoded.reason
        assert decoded.header is not None
        assert decoded.header.manufacturer == "ELS"
        assert decoded.header.id == "12345678"
        assert decoded.transport is not None
        assert decoded.transport.security_mode == 7
        assert decoded.transport.message_counter == 0x0AB3
        assert decoded.transport.authenticated
        assert decoded.transport.decrypted
        assert decoded.values.volume_m3 == pytest.approx(28504.27)


@pytest.mark.parametrize("offset", [MAC_AT, MAC_AT + 9, len(OMS_GAS_MODE7) - 1])
def test_mode7_altered_mac_or_ciphertext_is_bad_mac(offset: int) -> None:
    """One flipped bit in the MAC, the TPL header or the ciphertext fails the MAC check."""
    altered = bytearray(OMS_GAS_MODE7)
    altered[offset] ^= 0x10
    decoded = decode_telegram(bytes(altered), OMS_KEY)
    assert not decoded.ok
    assert decoded.failure is DecodeFailure.BAD_MAC
    assert decoded.reason is not None
    assert "MAC" in decoded.reason
    assert decoded.header is not None  # the sender is still known


def test_mode7_wrong_or_missing_key() -> None:
    """A wrong key fails the MAC check; no key is key_missing, never unsupported."""
    wrong = decode_telegram(OMS_GAS_MODE7, bytes(16))
    assert wrong.failure is DecodeFailure.BAD_MAC
    missing = decode_telegram(OMS_GAS_MODE7)
    assert missing.failure is DecodeFailure.KEY_MISSING


def test_mode7_without_message_counter_is_unsupported() -> None:
    """Mode 7 without AFL counter cannot derive its key: a clean unsupported_security."""
    without_afl = OMS_GAS_MODE7[:13] + OMS_GAS_MODE7[30:]  # ELL then TPL directly
    without_afl = bytes([len(without_afl) - 1]) + without_afl[1:]
    decoded = decode_telegram(without_afl, OMS_KEY)
    assert decoded.failure is DecodeFailure.UNSUPPORTED_SECURITY
    assert decoded.reason is not None
    assert "counter" in decoded.reason


def test_compact_frame_data_crc_is_checked() -> None:
    """A compact frame decodes when its data CRC matches; one altered data byte fails it."""
    formats = FormatCache()
    full = decode_telegram(KAMSTRUP_FULL, formats=formats)
    intact = decode_telegram(_compact_frame(COMPACT_PAYLOAD), formats=formats)
    assert intact.ok, intact.reason
    assert intact.values.energy_kwh == full.values.energy_kwh
    altered = bytearray(COMPACT_PAYLOAD)
    altered[6] ^= 0x01  # lowest byte of the energy register
    broken = decode_telegram(_compact_frame(bytes(altered)), formats=formats)
    assert not broken.ok
    assert broken.failure is DecodeFailure.BAD_DATA_CRC
    assert broken.transport is not None
    assert broken.transport.compact_format_signature == 0xF1E7
