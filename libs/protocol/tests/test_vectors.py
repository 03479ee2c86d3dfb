"""The hex test vectors of docs/protocol.md: our codec produces and accepts exactly them."""

from __future__ import annotations

from pathlib import Path

import pytest

from balans_protocol.auth import UNAUTHENTICATED_KEY, session_key
from balans_protocol.errors import NackReason
from balans_protocol.frames import (
    Ack,
    Command,
    CommandAction,
    CommandResult,
    CommandStatus,
    Frame,
    Hello,
    Nack,
    Ping,
    Upload,
    decode_frame,
    encode_frame,
)
from balans_protocol.records import (
    EventRecord,
    Medium,
    PulseRecord,
    RawTelegramRecord,
    StatusRecord,
    TemperatureRecord,
)

DOC = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"
DEVICE_KEY = bytes(range(32))
CLIENT_NONCE = bytes(range(16))
SERVER_NONCE = bytes(range(0xF0, 0x100))
SESSION_KEY = session_key(DEVICE_KEY, CLIENT_NONCE, SERVER_NONCE)
SERIAL = 1_000_001
TS = 1_767_229_200  # 2026-01-01T01:00:00Z
TELEGRAM = bytes.fromhex("2e4493157856341233037a2a0000002f2f0c1427048502046d32371f1502fd1700002f2f")


def all_vectors() -> list[tuple[str, bytes, Frame]]:
    """(name, key, frame) of every vector, in the order of docs/protocol.md."""
    upload = Upload.of(
        [
            PulseRecord(100001, 0, TS, 1234),
            PulseRecord(100001, 1, TS, 99),
            TemperatureRecord(100001, TS, 7012, 5120),
            StatusRecord(100001, TS, 3550, -87, 3, 100002, True, 0x0102),
            EventRecord(100001, TS + 17, 42),
            RawTelegramRecord(0, Medium.WIRELESS_MBUS, TS + 17, -70, TELEGRAM),
        ]
    )
    return [
        ("hello-concentrator", DEVICE_KEY, Frame(SERIAL, 1, Hello(7, CLIENT_NONCE))),
        ("hello-server", DEVICE_KEY, Frame(SERIAL, 1, Hello(7, SERVER_NONCE, CLIENT_NONCE))),
        ("hello-proof", SESSION_KEY, Frame(SERIAL, 2, Hello(7, CLIENT_NONCE, SERVER_NONCE))),
        ("ack-proof", SESSION_KEY, Frame(SERIAL, 2, Ack(2))),
        ("upload", SESSION_KEY, Frame(SERIAL, 3, upload)),
        ("ack", SESSION_KEY, Frame(SERIAL, 3, Ack(3))),
        ("nack-bad-format", SESSION_KEY, Frame(SERIAL, 4, Nack(4, NackReason.BAD_FORMAT))),
        (
            "nack-unknown-concentrator",
            UNAUTHENTICATED_KEY,
            Frame(0, 1, Nack(0, NackReason.UNKNOWN_CONCENTRATOR)),
        ),
        ("nack-replayed", UNAUTHENTICATED_KEY, Frame(0, 1, Nack(0, NackReason.REPLAYED))),
        ("command", SESSION_KEY, Frame(SERIAL, 5, Command(100001, CommandAction.VALVE_CLOSE, 1))),
        (
            "command-result",
            SESSION_KEY,
            Frame(SERIAL, 5, CommandResult(5, CommandStatus.DONE, "closed")),
        ),
        ("ping", SESSION_KEY, Frame(SERIAL, 6, Ping())),
    ]


def _documented() -> dict[str, str]:
    """name -> hex of every ```hex block headed by a ``<!-- vector: name -->`` line."""
    found: dict[str, str] = {}
    lines = DOC.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("<!-- vector: "):
            name = line.removeprefix("<!-- vector: ").removesuffix(" -->")
            end = lines.index("```", i + 2)
            found[name] = "".join("".join(lines[i + 2 : end]).split())
    return found


def test_session_key_vector() -> None:
    """The documented session key is HMAC(device key, label || client || server nonce)."""
    assert _documented()["session-key"] == SESSION_KEY.hex()


@pytest.mark.parametrize(("name", "key", "frame"), all_vectors(), ids=lambda v: str(v)[:30])
def test_documented_vector(name: str, key: bytes, frame: Frame) -> None:
    """Each vector in docs/protocol.md is what encode_frame produces, and decodes back."""
    documented = bytes.fromhex(_documented()[name])
    assert encode_frame(frame, key) == documented
    assert decode_frame(documented, key) == frame
