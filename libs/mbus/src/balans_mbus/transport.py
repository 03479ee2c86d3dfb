"""From the CI field to plaintext data records: extended link layer (ELL), authentication
and fragmentation layer (AFL, unfragmented only), transport layer headers (none, short,
long) with their security, and compact frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from balans_mbus.compact import FormatCache, FormatError, expand
from balans_mbus.link import LinkFrame, device_header
from balans_mbus.model import DecodeFailure, DeviceHeader, Transport
from balans_mbus.security import (
    FILLER,
    SecurityError,
    decrypt_mode5,
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
            _skip_afl(cursor)
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


def _skip_afl(cursor: _Cursor) -> None:
    """Skip an unfragmented AFL; its MAC is not verified (see docs/mbus.md)."""
    length = cursor.need(2, "AFL")[1]
    cursor.need(2 + length, "AFL")
    fragment_control = int.from_bytes(cursor.app[2:4], "little") if length >= 2 else 0
    if fragment_control & 0x4000:  # MF: more fragments follow
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY, "fragmented AFL messages are not supported"
        )
    cursor.app = cursor.app[2 + length :]


def _transport_layer(cursor: _Cursor, ci: int, formats: FormatCache) -> Application:
    size, compact = TPL_HEADERS[ci]
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
    if size and mode in _CONFIG_EXTENDED_MODES:
        payload = payload[1:]
    transport = Transport(
        ci=ci,
        access_number=cursor.access_number,
        status=status,
        security_mode=mode,
        encrypted_blocks=blocks,
    )
    payload = _decrypt(cursor, transport, payload)
    transport = transport.model_copy(
        update={"decrypted": cursor.decrypted, "plaintext_in_place": cursor.plaintext_in_place}
    )
    if not compact:
        return Application(cursor.header, transport, payload)
    return _expand_compact(cursor, transport, payload, formats)


def _decrypt(cursor: _Cursor, transport: Transport, payload: bytes) -> bytes:
    mode = transport.security_mode
    if mode == 0:
        return payload
    if payload.startswith(FILLER):
        cursor.plaintext_in_place = True
        return payload
    if mode != 5:
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY,
            f"security mode {mode} is not supported (modes 0 and 5, and decrypted payloads)",
            transport,
        )
    if cursor.key is None:
        raise cursor.fail(
            DecodeFailure.KEY_MISSING, "payload is encrypted (mode 5); no key given", transport
        )
    if cursor.access_number is None or cursor.address is None:
        raise cursor.fail(
            DecodeFailure.UNSUPPORTED_SECURITY,
            "mode 5 needs an address and access number",
            transport,
        )
    try:
        plain = decrypt_mode5(
            cursor.key, cursor.address, cursor.access_number, payload, transport.encrypted_blocks
        )
    except SecurityError as exc:
        raise cursor.fail(DecodeFailure.DECRYPTION_FAILED, str(exc), transport) from exc
    cursor.decrypted = True
    return plain


def _expand_compact(
    cursor: _Cursor, transport: Transport, payload: bytes, formats: FormatCache
) -> Application:
    if len(payload) < 4:
        raise cursor.fail(
            DecodeFailure.TRUNCATED, "compact frame without signature and CRC", transport
        )
    signature = int.from_bytes(payload[0:2], "little")
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
    return Application(cursor.header, transport, records, full_frame=False)
