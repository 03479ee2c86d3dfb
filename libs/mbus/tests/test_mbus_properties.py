"""Property tests: no input makes the decoder raise; failures always carry a reason."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balans_mbus.compact import FormatCache
from balans_mbus.decoder import decode_telegram
from balans_mbus.model import DecodedTelegram

from .corpus import load_cases

SEEDS = [telegram for case in load_cases() for telegram in case.telegrams]
KEYS = st.none() | st.binary(min_size=16, max_size=16) | st.binary(max_size=20)


def _check(decoded: DecodedTelegram) -> None:
    assert isinstance(decoded, DecodedTelegram)
    if not decoded.ok:
        assert decoded.failure is not None
        assert decoded.reason


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300), KEYS)
def test_random_bytes_never_raise(data: bytes, key: bytes | None) -> None:
    """Arbitrary bytes (and keys) give a DecodedTelegram, never an exception."""
    _check(decode_telegram(data, key))


@st.composite
def mutated_telegrams(draw: st.DrawFn) -> bytes:
    """A real telegram with a few bytes changed, cut short or extended."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=8))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_telegrams(), KEYS)
def test_mutated_real_telegrams_never_raise(data: bytes, key: bytes | None) -> None:
    """Near-valid telegrams reach the deep layers (ELL, TPL, records) and still never raise."""
    _check(decode_telegram(data, key, FormatCache()))


@settings(max_examples=1000, deadline=None)
@given(st.binary(min_size=1, max_size=60), st.binary(max_size=80))
def test_random_compact_formats_never_raise(headers: bytes, data: bytes) -> None:
    """A learnt format of garbage headers does not break compact-frame expansion."""
    formats = FormatCache()
    signature = formats.learn(headers)
    frame_body = bytes.fromhex("442D2C676767673004") + b"\x79" + signature.to_bytes(2, "little")
    frame_body += b"\x00\x00" + data
    _check(decode_telegram(bytes([len(frame_body)]) + frame_body, None, formats))
