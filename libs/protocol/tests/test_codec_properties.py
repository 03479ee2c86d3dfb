"""Property tests of the wire codec: round trips, and no input makes it misbehave."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from balans_protocol.auth import TAG_BYTES, tag
from balans_protocol.errors import NackReason, ProtocolError
from balans_protocol.frames import (
    LENGTH,
    MAX_FRAME_BYTES,
    Frame,
    FrameSplitter,
    Upload,
    decode_frame,
    encode_frame,
)
from balans_protocol.records import decode_records, encode_records
from balans_protocol.strategies import frames, keys, records


def _resign(data: bytes, key: bytes) -> bytes:
    """Give mutated bytes a valid tag so the decoder gets past authentication."""
    if len(data) < TAG_BYTES:
        return data
    return data[:-TAG_BYTES] + tag(key, data[:-TAG_BYTES])


def _decode_or_reason(data: bytes, key: bytes) -> Frame | NackReason:
    try:
        return decode_frame(data, key)
    except ProtocolError as exc:
        return exc.reason


@given(frames, keys)
def test_every_frame_round_trips(frame: Frame, key: bytes) -> None:
    """decode(encode(x)) == x for every frame type."""
    assert decode_frame(encode_frame(frame, key), key) == frame


@given(st.lists(records, max_size=60))
def test_records_round_trip_in_order(items: list) -> None:
    """An UPLOAD body decodes to the same records in the same order."""
    assert decode_records(encode_records(items)) == items


@given(frames, keys, keys)
def test_wrong_key_is_bad_tag(frame: Frame, key: bytes, other: bytes) -> None:
    """A frame tagged with another key is refused as BAD_TAG."""
    if key == other:
        return
    assert _decode_or_reason(encode_frame(frame, key), other) is NackReason.BAD_TAG


@settings(max_examples=300)
@given(st.binary(max_size=2000), keys)
def test_arbitrary_bytes_give_frame_or_protocol_error(data: bytes, key: bytes) -> None:
    """Random bytes, signed or not, decode to a Frame or raise ProtocolError, nothing else."""
    for candidate in (data, _resign(data, key)):
        result = _decode_or_reason(candidate, key)
        assert isinstance(result, Frame | NackReason)


@settings(max_examples=300)
@given(frames, keys, st.data())
def test_mutated_frames_give_frame_or_protocol_error(frame: Frame, key: bytes, data) -> None:
    """Flipped, cut or inserted bytes in a valid (re-signed) frame never crash the decoder."""
    raw = bytearray(encode_frame(frame, key))
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del raw[pos : pos + data.draw(st.integers(1, 8))]
        else:
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
    result = _decode_or_reason(_resign(bytes(raw), key), key)
    assert isinstance(result, Frame | NackReason)


@given(st.lists(frames, min_size=1, max_size=5), keys, st.lists(st.integers(1, 64), min_size=1))
def test_splitter_cuts_a_stream_at_frame_boundaries(
    items: list[Frame], key: bytes, chunks: list[int]
) -> None:
    """However the stream is chunked, the splitter returns exactly the frames sent."""
    stream = b"".join(encode_frame(f, key) for f in items)
    splitter = FrameSplitter()
    got: list[bytes] = []
    offset = 0
    i = 0
    while offset < len(stream):
        size = chunks[i % len(chunks)]
        got += splitter.feed(stream[offset : offset + size])
        offset += size
        i += 1
    assert [decode_frame(g, key) for g in got] == items
    assert splitter.buffered == 0


@pytest.mark.parametrize("announced", [MAX_FRAME_BYTES, 2**32 - 1, 3])
def test_splitter_refuses_bad_length_before_buffering(announced: int) -> None:
    """An out-of-bounds length prefix is OVERSIZE at once, with nothing buffered for it."""
    splitter = FrameSplitter()
    with pytest.raises(ProtocolError) as caught:
        splitter.feed(LENGTH.pack(announced) + b"\x00" * 16)
    assert caught.value.reason is NackReason.OVERSIZE


def test_encoder_refuses_frame_above_the_limit() -> None:
    """encode_frame raises ValueError rather than emit a frame the peer must refuse."""
    with pytest.raises(ValueError, match="exceeds"):
        encode_frame(Frame(1, 1, Upload(b"\x00" * MAX_FRAME_BYTES)), bytes(32))
