"""Payload security: OMS security mode 5 (AES-128-CBC, EN 13757-7), mode 7 (AES-128-CBC
with IV zero under an ephemeral key, authenticated by the AFL's AES-CMAC) and the extended
link layer's AES-128-CTR (EN 13757-4 ELL with session number).

Each checks what the standard gives it to check (the 0x2F2F marker, the AFL MAC, the ELL
payload CRC), so a wrong key or an altered telegram is reported as such instead of yielding
garbage records.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC

from balans_mbus.crc import crc16_en13757

AES_BLOCK = 16
KEY_BYTES = 16
FILLER = b"\x2f\x2f"
# OMS vol. 2 / EN 13757-7 key derivation: derivation constants for messages from the meter.
_DC_ENCRYPTION_FROM_METER = 0x00
_DC_MAC_FROM_METER = 0x01
_KDF_PADDING = b"\x07" * 7


class SecurityError(Exception):
    """Decryption did not produce a verifiable plaintext."""


def decrypt_mode5(
    key: bytes, address: bytes, access_number: int, payload: bytes, blocks: int
) -> bytes:
    """Decrypt the first ``blocks`` AES blocks of ``payload`` (the rest stays as it came).

    ``address`` is M(2) ID(4) VER TYPE of the meter, the IV is that followed by the access
    number eight times. ``blocks == 0`` means all whole blocks (older meters send 0).
    """
    return _decrypt_cbc(key, address + bytes([access_number]) * 8, payload, blocks)


def _decrypt_cbc(key: bytes, iv: bytes, payload: bytes, blocks: int) -> bytes:
    size = (blocks or len(payload) // AES_BLOCK) * AES_BLOCK
    if size == 0 or len(payload) < size:
        raise SecurityError(f"{len(payload)} payload bytes, {blocks} encrypted blocks announced")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(payload[:size]) + decryptor.finalize()
    if not plain.startswith(FILLER):
        raise SecurityError("no 0x2F2F after decryption: wrong key")
    return plain + payload[size:]


def aes_cmac(key: bytes, data: bytes) -> bytes:
    """AES-CMAC (RFC 4493) of ``data``: 16 bytes."""
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


@dataclass(frozen=True, slots=True)
class EphemeralKeys:
    """Mode 7 keys of one message: Kenc decrypts the payload, Kmac checks the AFL MAC."""

    encryption: bytes
    mac: bytes


def derive_mode7_keys(key: bytes, counter: bytes, meter_id: bytes) -> EphemeralKeys:
    """KDF-A of OMS vol. 2: CMAC(K, DC || AFL.MCR (4) || meter ID (4) || 0x07 x 7).

    ``counter`` and ``meter_id`` are the four bytes as they stand in the telegram (little
    endian); the ID is the transport layer's long-header ID when there is one, else the link
    layer's.
    """
    suffix = counter + meter_id + _KDF_PADDING
    return EphemeralKeys(
        encryption=aes_cmac(key, bytes([_DC_ENCRYPTION_FROM_METER]) + suffix),
        mac=aes_cmac(key, bytes([_DC_MAC_FROM_METER]) + suffix),
    )


def afl_mac_ok(mac_key: bytes, authenticated: bytes, received_mac: bytes) -> bool:
    """True when the leading bytes of CMAC(Kmac, ``authenticated``) equal ``received_mac``.

    ``authenticated`` is AFL.MCL || AFL.MCR || {AFL.ML} || the message from the TPL's CI
    field to its last byte, as sent (still encrypted).
    """
    expected = aes_cmac(mac_key, authenticated)[: len(received_mac)]
    return bool(received_mac) and hmac.compare_digest(expected, received_mac)


def decrypt_mode7(encryption_key: bytes, payload: bytes, blocks: int) -> bytes:
    """Decrypt the first ``blocks`` AES blocks of ``payload`` with IV zero (the rest stays)."""
    return _decrypt_cbc(encryption_key, bytes(AES_BLOCK), payload, blocks)


def ell_iv(address: bytes, communication_control: int, session_number: bytes) -> bytes:
    """The ELL counter block: M A CC SN FN(2)=0 BC=0."""
    return address + bytes([communication_control]) + session_number + b"\x00\x00\x00"


def ell_crypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-128-CTR over ``data`` (encryption and decryption are the same operation)."""
    cryptor = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    return cryptor.update(data) + cryptor.finalize()


def ell_payload_crc_ok(crc_and_payload: bytes) -> bool:
    """True when the leading CRC (little-endian) matches the payload after it."""
    return len(crc_and_payload) >= 2 and crc16_en13757(crc_and_payload[2:]) == int.from_bytes(
        crc_and_payload[:2], "little"
    )
