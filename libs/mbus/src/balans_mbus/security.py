"""Payload decryption: OMS security mode 5 (AES-128-CBC, EN 13757-7) and the extended link
layer's AES-128-CTR (EN 13757-4 ELL with session number).

Both check what the standard gives them to check (the 0x2F2F marker, the ELL payload CRC),
so a wrong key is reported as such instead of yielding garbage records.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from balans_mbus.crc import crc16_en13757

AES_BLOCK = 16
KEY_BYTES = 16
FILLER = b"\x2f\x2f"


class SecurityError(Exception):
    """Decryption did not produce a verifiable plaintext."""


def decrypt_mode5(
    key: bytes, address: bytes, access_number: int, payload: bytes, blocks: int
) -> bytes:
    """Decrypt the first ``blocks`` AES blocks of ``payload`` (the rest stays as it came).

    ``address`` is M(2) ID(4) VER TYPE of the meter, the IV is that followed by the access
    number eight times. ``blocks == 0`` means all whole blocks (older meters send 0).
    """
    size = (blocks or len(payload) // AES_BLOCK) * AES_BLOCK
    if size == 0 or len(payload) < size:
        raise SecurityError(f"{len(payload)} payload bytes, {blocks} encrypted blocks announced")
    iv = address + bytes([access_number]) * 8
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    plain = decryptor.update(payload[:size]) + decryptor.finalize()
    if not plain.startswith(FILLER):
        raise SecurityError("no 0x2F2F after decryption: wrong key")
    return plain + payload[size:]


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
