"""Dead letters: messages a consumer gave up on, kept with why, until an operator acts.

A dead letter is the original body on ``balans.deadletter.<service>`` in the DEADLETTER
stream; the original's own headers are kept, and ``Balans-DL-*`` headers say where it came
from (subject, stream and sequence, consumer), how often it was delivered and the last
error. Its id is its sequence in DEADLETTER.

``replay`` publishes it again on its original subject for the consumer that gave up only
(other consumers of the subject ack it unseen), then removes the dead letter; if it fails
again it comes back as a new dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from balans_protocol import subjects

SUBJECT = "Balans-DL-Subject"
STREAM = "Balans-DL-Stream"
SEQUENCE = "Balans-DL-Sequence"
CONSUMER = "Balans-DL-Consumer"
DELIVERIES = "Balans-DL-Deliveries"
ERROR = "Balans-DL-Error"
MSG_ID = "Balans-DL-Msg-Id"
REPLAY_FOR = "Balans-Replay-For"

_OURS = (SUBJECT, STREAM, SEQUENCE, CONSUMER, DELIVERIES, ERROR, MSG_ID, REPLAY_FOR)
ERROR_CHARS = 2000


def _header_value(text: str) -> str:
    """Header values are one line: newlines become ' | ', length is capped."""
    return " | ".join(line.strip() for line in text.splitlines() if line.strip())[:ERROR_CHARS]


def _original_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """The application's headers: no JetStream controls (``Nats-*``), none of ours."""
    return {
        k: v
        for k, v in (headers or {}).items()
        if not k.lower().startswith("nats-") and k not in _OURS
    }


async def send(
    js: JetStreamContext, service: str, consumer: str, msg: Msg, error: BaseException
) -> None:
    """Store ``msg`` as a dead letter of ``consumer``; returns once JetStream has it."""
    meta = msg.metadata
    headers = _original_headers(msg.headers)
    original_id = (msg.headers or {}).get("Nats-Msg-Id")
    if original_id:
        headers[MSG_ID] = original_id
    headers |= {
        SUBJECT: msg.subject,
        STREAM: meta.stream,
        SEQUENCE: str(meta.sequence.stream),
        CONSUMER: consumer,
        DELIVERIES: str(meta.num_delivered),
        ERROR: _header_value(f"{type(error).__name__}: {error}"),
        # written twice (a term lost, the message redelivered): stored once
        "Nats-Msg-Id": f"dl-{meta.stream}-{meta.sequence.stream}-{consumer}",
    }
    await js.publish(
        subjects.deadletter(service),
        msg.data,
        stream=subjects.DEADLETTER_STREAM,
        headers=headers,
    )


def replayed_for_other(msg: Msg, consumer: str) -> bool:
    """A replayed message meant for another consumer of the same subject."""
    target = (msg.headers or {}).get(REPLAY_FOR)
    return target is not None and target != consumer


@dataclass(frozen=True)
class DeadLetter:
    """One stored dead letter, as ``balans deadletter list / show`` print it."""

    id: int
    service: str
    stored_at: datetime | None
    subject: str
    stream: str
    sequence: int
    consumer: str
    deliveries: int
    error: str
    msg_id: str  # the original's Nats-Msg-Id, if it had one
    headers: dict[str, str]
    data: bytes

    @classmethod
    def from_stored(
        cls, seq: int, subject: str, time: datetime | None, headers: dict[str, str], data: bytes
    ) -> DeadLetter:
        return cls(
            id=seq,
            service=subject.removeprefix(subjects.deadletter("")),
            stored_at=time,
            subject=headers.get(SUBJECT, ""),
            stream=headers.get(STREAM, ""),
            sequence=int(headers.get(SEQUENCE, "0")),
            consumer=headers.get(CONSUMER, ""),
            deliveries=int(headers.get(DELIVERIES, "0")),
            error=headers.get(ERROR, ""),
            msg_id=headers.get(MSG_ID, ""),
            headers=_original_headers(headers),
            data=data,
        )


async def get(js: JetStreamContext, dead_letter_id: int) -> DeadLetter:
    """One dead letter by id; ``LookupError`` when there is none (never was, or replayed)."""
    try:
        raw = await js.get_msg(subjects.DEADLETTER_STREAM, seq=dead_letter_id)
    except NotFoundError as exc:
        raise LookupError(f"no dead letter {dead_letter_id}") from exc
    return DeadLetter.from_stored(
        dead_letter_id, raw.subject or "", raw.time, raw.headers or {}, raw.data or b""
    )


async def list_all(js: JetStreamContext, service: str | None = None) -> list[DeadLetter]:
    """Every dead letter kept (of one service, or all), oldest first."""
    subject = subjects.deadletter(service) if service else subjects.DEADLETTER_ALL
    found: list[DeadLetter] = []
    seq = 1
    while True:
        try:
            raw = await js.get_msg(subjects.DEADLETTER_STREAM, seq=seq, subject=subject, next=True)
        except NotFoundError:
            return found
        assert raw.seq is not None
        found.append(
            DeadLetter.from_stored(
                raw.seq, raw.subject or "", raw.time, raw.headers or {}, raw.data or b""
            )
        )
        seq = raw.seq + 1


async def replay(js: JetStreamContext, dead_letter_id: int) -> int:
    """Publish a dead letter again for its consumer, then delete it; returns the new
    sequence in the original stream. Replaying the same id twice within the original
    stream's duplicate window stores it once."""
    letter = await get(js, dead_letter_id)
    headers = letter.headers | {
        REPLAY_FOR: letter.consumer,
        "Nats-Msg-Id": f"replay-{subjects.DEADLETTER_STREAM}-{dead_letter_id}",
    }
    ack = await js.publish(letter.subject, letter.data, stream=letter.stream, headers=headers)
    await js.delete_msg(subjects.DEADLETTER_STREAM, dead_letter_id)
    return ack.seq
