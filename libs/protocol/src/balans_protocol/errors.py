"""Why a frame was refused: the NACK reason codes and the one exception the codec raises."""

from __future__ import annotations

from enum import IntEnum, unique


@unique  # two reasons sharing a code would make one an alias of the other on the wire
class NackReason(IntEnum):
    """Reason codes carried by a NACK frame (docs/protocol.md, "NACK reasons")."""

    BAD_TAG = 1  # the authentication tag does not verify
    BAD_FORMAT = 2  # the frame or a record in it does not parse
    OVERSIZE = 3  # the length prefix exceeds MAX_FRAME_BYTES (or is below the minimum)
    UNKNOWN_CONCENTRATOR = 4  # no key for this concentrator id
    NOT_AUTHENTICATED = 5  # a frame other than HELLO before the handshake finished
    UNSUPPORTED_VERSION = 6  # the version byte is not one the server speaks
    UNAVAILABLE = 7  # the server could not store the batch now; resend it later
    WRONG_CONCENTRATOR = 8  # the frame names another concentrator than the session's
    REPLAYED = 11  # the HELLO's nonce was used before: a recorded HELLO played again
    IMPLAUSIBLE_TIME = 9  # a record's time is in the future or older than the server keeps
    UNREGISTERED_MODULE = 10  # a record's module is not registered to the building


class ProtocolError(Exception):
    """A byte string is not a valid frame; ``reason`` says why (and is the NACK code)."""

    def __init__(self, reason: NackReason, detail: str = "") -> None:
        super().__init__(f"{reason.name}: {detail}" if detail else reason.name)
        self.reason = reason
        self.detail = detail
