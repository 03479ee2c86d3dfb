"""From the CI field to plaintext data records: extended link layer (ELL), authentication
and fragmentation layer (AFL, unfragmented only, MAC checked in mode 7), transport layer
headers (none, short, long) with their security, and compact frames (data CRC checked).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balans_mbus.compact import FormatCache, FormatError, expand
from balans_mbus.crc import crc16_en13757
from balans_mbus.dif import IDLE_FILLER
from balans_mbus.link import LinkFrame, device_header
from balans_mbus.model import DecodeFailure, DeviceHeader, Transport
from balans_mbus.security import (
    FILLER,
    SecurityError,
    afl_mac_ok,
    decrypt_mode5,
    decrypt_mode7,
    derive_mode7_keys,
    ell_crypt,
    ell_iv,
    ell_payload_crc_ok,
)

CI_ELL_SHORT = 0x8C  # CC ACC
CI_ELL_LONG = 0x8D  # CC ACC SN(4) PAYLOAD-CRC(2)
CI_ELL_SHORT_ADDR = 0x8E  # CC ACC M(2) A(6)
CI_ELL_LONG_ADDR = 0x8F  # CC ACC M(2) A(6) SN(4) PAYLOAD-CRC(2)
CI_AFL = 0x90
# CI -> (transport header size, compact frame)
TPL_HEADERS: dict[int, tuple[int, bool]] = {
    0x78: (0, False),
    0x79: (0, True),
    0x7A: (4, False),
    0x7B: (4, True),
    0x72: (12, False),
    0x73: (12, True),
}
# Security modes whose configuration field has one extension byte (OMS vol. 2, 7.2.4.3).
_CONFIG_EXTENDED_MODES = (7, 13)
_MANUFACTURER_CI = range(0xA0, 0xB8)
_ELL_ENCRYPTION_SHIFT = 29
_ELL_SESSION_ENCRYPTED = 1
# AFL fragmentation control (FC) and message control (MCL) bits, EN 13757-7 / OMS vol. 2.
_FC_MORE_FRAGMENTS = 0x4000
_FC_MESSAGE_CONTROL = 0x2000
_FC_MESSAGE_LENGTH = 0x1000
_FC_MESSAGE_COUNTER = 0x0800
_FC_MAC = 0x0400
_FC_KEY_INFO = 0x0200
_MCL_KEY_INFO = 0x10
_MCL_MESSAGE_COUNTER = 0x20
_MCL_MESSAGE_LENGTH = 0x40
_MCL_AUTHENTICATION = 0x0F
_AUTHENTICATION_GMAC = 8  # AES-GMAC-128: not implemented (OMS uses the CMAC types)
_KDF_A = 1  # TPL configuration extension, key derivation selection


class TransportError(Exception):
    """The payload cannot be read; whatever header was learnt goes into the result."""

    def __init__(
        self,
        failure: DecodeFailure,
        reason: str,
        header: DeviceHeader | None,
        transport: Transport | None = None,
    ) -> None:
        super().__init__(reason)
        self.failure = failure
        self.reason = reason
        self.header = header
        self.transport = transport


@dataclass(slots=True)
class Application:
    """Plaintext data records and the facts learnt on the way to them."""

    header: DeviceHeader | None
    transport: Transport
    records: bytes
    # The meter's record headers may be learnt from this frame (full frames only).
    full_frame: bool = True
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AuthenticationLayer:
    """An unfragmented AFL: what the mode 7 key derivation and MAC check need."""

    message_control: int
    counter: bytes | None
    mac: bytes
    message_length: bytes

    def authenticated_prefix(self) -> bytes:
        """AFL.MCL || AFL.MCR || {AFL.ML}: what the MAC covers before the TPL."""
        return bytes([self.message_control]) + (self.counter or b"") + self.message_length


@dataclass(slots=True)
class _Cursor:
    link: LinkFrame
    key: bytes | None
    app: bytes
    header: DeviceHeader | None
    address: bytes | None
    access_number: int | None = None
    plaintext_in_place: bool = False
    decrypted: bool = False
    authenticated: bool = False
    afl: AuthenticationLayer | None = None
    # The TPL from its CI field to the end, as received: what the AFL MAC covers.
    message: bytes = b""

    def fail(
        self, failure: DecodeFailure, reason: str, transport: Transport | None = None
    ) -> TransportError:
        return TransportError(failure, reason, self.header, transport)

    def need(self, count: int, what: str) -> bytes:
        if len(self.app) < count:
            raise self.fail(DecodeFailure.TRUNCATED, f"{what}: {len(self.app)} of {count} bytes")
        return self.app[:count]


def parse_application(link: LinkFrame, key: bytes | None, formats: FormatCache) -> Application:
    """Walk the CI chain of ``link`` down to the data records; raises :class:`TransportError`."""
    cursor = _Cursor(link=link, key=key, app=link.app, header=link.header, address=link.address)
    while True:
        if not cursor.app:
            raise cursor.fail(DecodeFailure.TRUNCATED, "frame ends where a CI field was due")
        ci = cursor.app[0]
        if ci in (CI_ELL_SHORT, CI_ELL_LONG, CI_ELL_SHORT_ADDR, CI_ELL_LONG_ADDR):
            _extended_link_layer(cursor, ci)
        elif ci == CI_AFL:
            cursor.afl = _authentication_layer(cursor)
        elif ci in TPL_HEADERS:
            return _transport_layer(cursor, ci, formats)
        elif ci in _MANUFACTURER_CI:
            raise cursor.fail(
                DecodeFailure.MANUFACTURER_SPECIFIC,
                f"CI 0x{ci:02X} is a manufacturer-specific payload, not EN 13757-3 records",
            )
        else:
            raise cursor.fail(DecodeFailure.UNSUPPORTED_CI, f"CI 0x{ci:02X} is not supported")


def _extended_link_layer(cursor: _Cursor, ci: int) -> None:
    with_address = ci in (CI_ELL_SHORT_ADDR, CI_ELL_LONG_ADDR)
    with_session = ci in (CI_ELL_LONG, CI_ELL_LONG_ADDR)
    size = 3 + (8 if with_address else 0) + (4 if with_session else 0)
    head = cursor.need(size, f"ELL 0x{ci:02X}")
    communication_control, cursor.access_number = head[1], head[2]
    cursor.app = cursor.app[size:]
    if not with_session:
        return
    session = head[-4:]
    encryption = int.from_bytes(session, "little") >> _ELL_ENCRYPTION_SHIFT
    if len(cursor.app) < 2:
        raise cursor.fail(DecodeFailure.TRUNCATED, "ELL without its payload CRC")
    if encryption == _ELL_SESSION_ENCRYPTED and not ell_payload_crc_ok(cursor.app):
        if cursor.key is None:
            raise cursor.fail(DecodeFailure.KEY_MISSING, "ELL payload is encrypted; no key given")
        if cursor.address is None:
            raise cursor.fail(DecodeFailure.UNSUPPORTED_SECURITY, "ELL encryption needs an address")
        iv = ell_iv(cursor.address, communication_control, session)
        cursor.app = ell_crypt(cursor.key, iv, cursor.app)
        if not ell_payload_crc_ok(cursor.app):
            raise cursor.fail(
                DecodeFailure.DECRYPTION_FAILED, "ELL payload CRC wrong after decryption: wrong key"
            )
        cursor.decrypted = True
    elif encryption == _ELL_SESSION_ENCRYPTED:
        cursor.plaintext_in_place = True
    elif encryption != 0:
        raise cursor.fail(DecodeFailure.UNSUPPORTED_SECURITY, f"ELL encryption {encryption}")
    elif not ell_payload_crc_ok(cursor.app):
        raise cursor.fail(DecodeFailure.BAD_CRC, "ELL payload CRC mismatch")
    cursor.app = cursor.app[2:]


def _authentication_layer(cursor: _Cursor) -> AuthenticationLayer:
    """Read an unfragmented AFL: FC, MCL, KI, MCR, MAC, ML (each only where announced)."""
    length = cursor.need(2, "AFL")[1]
    body = cursor.need(2 + length, "AFL")[2:]
    cursor.app = cursor.app[2 + length :]
    if length < 2:
        raise cursor.fail(DecodeFailure.TRUNCATED, f"AFL of {length} bytes has no FC field")
    fragment_control = int.from_bytes(body[0:2], "little")
    if fragment_control & _FC_MORE_FRAGMENTS:
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY, "fragmented AFL messages are not supported"
        )
    message_control = body[2] if fragment_control & _FC_MESSAGE_CONTROL and length > 2 else 0
    pos = 3 if fragment_control & _FC_MESSAGE_CONTROL else 2
    if fragment_control & _FC_KEY_INFO or message_control & _MCL_KEY_INFO:
        pos += 2
    counter = None
    if fragment_control & _FC_MESSAGE_COUNTER or message_control & _MCL_MESSAGE_COUNTER:
        counter, pos = body[pos : pos + 4], pos + 4
    has_length = bool(
        fragment_control & _FC_MESSAGE_LENGTH or message_control & _MCL_MESSAGE_LENGTH
    )
    mac_end = length - 2 if has_length else length
    if pos > mac_end or (counter is not None and len(counter) != 4):
        raise cursor.fail(DecodeFailure.TRUNCATED, f"AFL of {length} bytes: fields missing")
    mac = body[pos:mac_end] if fragment_control & _FC_MAC else b""
    return AuthenticationLayer(message_control, counter, mac, body[mac_end:length])


def _transport_layer(cursor: _Cursor, ci: int, formats: FormatCache) -> Application:
    size, compact = TPL_HEADERS[ci]
    cursor.message = cursor.app
    head = cursor.need(1 + size, f"transport header of CI 0x{ci:02X}")[1:]
    payload = cursor.app[1 + size :]
    status: int | None = None
    config = 0
    if size == 12:
        cursor.address = head[4:6] + head[0:4] + head[6:8]
        cursor.header = device_header(cursor.address)
        head = head[8:]
    if size:
        cursor.access_number, status = head[0], head[1]
        config = int.from_bytes(head[2:4], "little")
    if cursor.header is None:
        raise cursor.fail(
            DecodeFailure.TRUNCATED, "no meter address: neither link nor transport header"
        )
    mode, blocks = (config >> 8) & 0x1F, (config >> 4) & 0x0F
    config_extension = None
    if size and mode in _CONFIG_EXTENDED_MODES:
        if not payload:
            raise cursor.fail(DecodeFailure.TRUNCATED, "no configuration extension byte")
        config_extension, payload = payload[0], payload[1:]
    counter = cursor.afl.counter if cursor.afl else None
    transport = Transport(
        ci=ci,
        access_number=cursor.access_number,
        status=status,
        security_mode=mode,
        encrypted_blocks=blocks,
        message_counter=int.from_bytes(counter, "little") if counter else None,
    )
    payload = _decrypt(cursor, transport, payload, config_extension)
    transport = transport.model_copy(
        update={
            "decrypted": cursor.decrypted,
            "plaintext_in_place": cursor.plaintext_in_place,
            "authenticated": cursor.authenticated,
        }
    )
    if not compact:
        return Application(cursor.header, transport, payload)
    return _expand_compact(cursor, transport, payload, formats)


def _decrypt(
    cursor: _Cursor, transport: Transport, payload: bytes, config_extension: int | None
) -> bytes:
    mode = transport.security_mode
    if mode == 0:
        return payload
    if payload.startswith(FILLER):
        cursor.plaintext_in_place = True
        return payload
    if mode not in (5, 7):
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY,
            f"security mode {mode} is not supported (modes 0, 5 and 7, and decrypted payloads)",
            transport,
        )
    if cursor.key is None:
        raise cursor.fail(
            DecodeFailure.KEY_MISSING,
            f"payload is encrypted (mode {mode}); no key given",
            transport,
        )
    try:
        if mode == 7:
            plain = _decrypt_mode7(cursor, cursor.key, transport, payload, config_extension)
        elif cursor.access_number is None or cursor.address is None:
            raise cursor.fail(
                DecodeFailure.UNSUPPORTED_SECURITY,
                "mode 5 needs an address and access number",
                transport,
            )
        else:
            plain = decrypt_mode5(
                cursor.key,
                cursor.address,
                cursor.access_number,
                payload,
                transport.encrypted_blocks,
            )
    except SecurityError as exc:
        raise cursor.fail(DecodeFailure.DECRYPTION_FAILED, str(exc), transport) from exc
    cursor.decrypted = True
    return plain


def _decrypt_mode7(
    cursor: _Cursor,
    key: bytes,
    transport: Transport,
    payload: bytes,
    config_extension: int | None,
) -> bytes:
    """Mode 7: ephemeral keys from the AFL counter, MAC checked before decrypting."""
    afl = cursor.afl
    kdf = (config_extension or 0) >> 4 & 0x03
    if afl is None or afl.counter is None or cursor.address is None or kdf != _KDF_A:
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY,
            f"mode 7 needs an AFL with a message counter and KDF-A (KDF selection {kdf})",
            transport,
        )
    keys = derive_mode7_keys(key, afl.counter, cursor.address[2:6])
    if afl.mac:
        if afl.message_control & _MCL_AUTHENTICATION == _AUTHENTICATION_GMAC:
            raise cursor.fail(
                DecodeFailure.UNSUPPORTED_SECURITY, "AFL AES-GMAC is not supported", transport
            )
        if not afl_mac_ok(keys.mac, afl.authenticated_prefix() + cursor.message, afl.mac):
            raise cursor.fail(
                DecodeFailure.BAD_MAC,
                f"AFL MAC {afl.mac.hex()} does not match: wrong key or altered telegram",
                transport,
            )
        cursor.authenticated = True
    return decrypt_mode7(keys.encryption, payload, transport.encrypted_blocks)


def _signature_at(payload: bytes, formats: FormatCache) -> int:
    """Where the format signature starts: after the idle fillers (0x2F) that may precede it.

    An encrypted compact frame decrypts to 2F 2F (the check of EN 13757-7 / OMS) and only
    then the signature. As a signature may itself begin with 0x2F, the first position
    after 0, 1, 2 ... fillers whose signature is a known format wins; with none known the
    signature is taken after all the fillers.
    """
    fillers = len(payload) - len(payload.lstrip(bytes([IDLE_FILLER])))
    for pos in range(fillers + 1):
        if formats.get(int.from_bytes(payload[pos : pos + 2], "little")) is not None:
            return pos
    return fillers


def _expand_compact(
    cursor: _Cursor, transport: Transport, payload: bytes, formats: FormatCache
) -> Application:
    payload = payload[_signature_at(payload, formats) :]
    if len(payload) < 4:
        raise cursor.fail(
            DecodeFailure.TRUNCATED, "compact frame without signature and CRC", transport
        )
    signature = int.from_bytes(payload[0:2], "little")
    data_crc = int.from_bytes(payload[2:4], "little")
    transport = transport.model_copy(update={"compact_format_signature": signature})
    headers = formats.get(signature)
    if headers is None:
        raise cursor.fail(
            DecodeFailure.UNKNOWN_FORMAT,
            f"compact frame with format signature 0x{signature:04X} not seen in a full frame yet",
            transport,
        )
    try:
        records = expand(headers, payload[4:])
    except FormatError as exc:
        raise cursor.fail(DecodeFailure.RECORDS_INVALID, str(exc), transport) from exc
    if crc16_en13757(records) != data_crc:
        raise cursor.fail(
            DecodeFailure.BAD_DATA_CRC,
            f"compact frame data CRC 0x{data_crc:04X} does not match the full-format records "
            f"(0x{crc16_en13757(records):04X}): corrupted data or a different format",
            transport,
        )
    return Application(cursor.header, transport, records, full_frame=False)
