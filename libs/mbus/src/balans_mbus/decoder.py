"""Decode one M-Bus or wireless M-Bus telegram: link, transport, security, records.

``decode_telegram`` never raises for any input bytes: every failure is a
:class:`DecodedTelegram` with ``ok=False``, a :class:`DecodeFailure` code and a reason.
"""

from __future__ import annotations

from balans_mbus.compact import FormatCache
from balans_mbus.link import LinkError, parse_link
from balans_mbus.model import DecodedTelegram, DecodeFailure
from balans_mbus.proprietary import proprietary_payload
from balans_mbus.records import current_values, parse_records
from balans_mbus.security import KEY_BYTES
from balans_mbus.transport import TransportError, parse_application


def decode_telegram(
    telegram: bytes, key: bytes | None = None, formats: FormatCache | None = None
) -> DecodedTelegram:
    """Decode ``telegram`` (a wired long frame or a wireless frame, block CRCs optional).

    ``key`` is the meter's AES-128 key when its payload is encrypted. ``formats`` holds
    compact-frame formats; full frames teach it their format, so pass the same cache for a
    stream of telegrams.
    """
    formats = formats if formats is not None else FormatCache()
    if key is not None and len(key) != KEY_BYTES:
        return DecodedTelegram(
            ok=False, failure=DecodeFailure.BAD_KEY, reason=f"AES-128 key of {len(key)} bytes"
        )
    try:
        link = parse_link(telegram)
    except LinkError as exc:
        return DecodedTelegram(ok=False, failure=exc.failure, reason=exc.reason)
    try:
        app = parse_application(link, key, formats)
    except TransportError as exc:
        return DecodedTelegram(
            ok=False,
            failure=exc.failure,
            reason=exc.reason,
            frame=link.kind,
            header=exc.header,
            transport=exc.transport,
        )
    proprietary = proprietary_payload(app.header)
    if proprietary is not None:
        return DecodedTelegram(
            ok=False,
            failure=DecodeFailure.MANUFACTURER_SPECIFIC,
            reason=proprietary,
            frame=link.kind,
            header=app.header,
            transport=app.transport,
        )
    parsed = parse_records(app.records, app.header.device_type if app.header else None)
    if app.full_frame and parsed.records and not parsed.problems:
        formats.learn(parsed.headers)
    decoded = DecodedTelegram(
        ok=bool(parsed.records),
        frame=link.kind,
        header=app.header,
        transport=app.transport,
        records=parsed.records,
        values=current_values(parsed.records),
        reason="; ".join(parsed.problems) or None,
    )
    if not parsed.records:
        return decoded.model_copy(
            update={
                "failure": DecodeFailure.RECORDS_INVALID,
                "reason": decoded.reason or "no records",
            }
        )
    return decoded
