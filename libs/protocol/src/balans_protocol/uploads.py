"""The UPLOADS stream message: an UPLOAD body as published by ingest for the persister.

The payload is the UPLOAD frame's body bytes unchanged (records.py); what the frame's
header and session said travels in NATS headers, validated by :class:`UploadHeaders`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MSG_ID = "Nats-Msg-Id"
_CONCENTRATOR = "Balans-Concentrator"
_BUILDING = "Balans-Building"
_BOOT = "Balans-Boot"
_SEQ = "Balans-Seq"
_RECEIVED = "Balans-Received"


def upload_msg_id(concentrator: int, boot: int, seq: int) -> str:
    """JetStream de-duplication id of one batch: a resend (same boot, same sequence)
    gets the same id; a new boot can reuse sequence numbers without colliding."""
    return f"{concentrator}.{boot}.{seq}"


class UploadHeaders(BaseModel):
    """Who sent the batch, and when ingest received it."""

    model_config = ConfigDict(frozen=True)

    concentrator: int = Field(ge=0)
    building_id: int
    boot: int = Field(ge=0)
    seq: int = Field(ge=0)
    received_unix: float

    @property
    def msg_id(self) -> str:
        return upload_msg_id(self.concentrator, self.boot, self.seq)

    def to_headers(self) -> dict[str, str]:
        return {
            MSG_ID: self.msg_id,
            _CONCENTRATOR: str(self.concentrator),
            _BUILDING: str(self.building_id),
            _BOOT: str(self.boot),
            _SEQ: str(self.seq),
            _RECEIVED: f"{self.received_unix:.3f}",
        }

    @classmethod
    def from_headers(cls, headers: dict[str, str] | None) -> UploadHeaders:
        """Parse NATS headers; raises ``pydantic.ValidationError`` when any is missing."""
        h = headers or {}
        return cls.model_validate(
            {
                "concentrator": h.get(_CONCENTRATOR),
                "building_id": h.get(_BUILDING),
                "boot": h.get(_BOOT),
                "seq": h.get(_SEQ),
                "received_unix": h.get(_RECEIVED),
            }
        )
