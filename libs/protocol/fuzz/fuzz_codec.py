"""Fuzz the wire codec: `make fuzz-protocol` (not part of the test suite).

Every input goes to ``decode_frame`` twice (as received, and re-signed so that the body
parser is reached past the tag check) and through ``FrameSplitter``. Anything but a
frame or ``ProtocolError`` is a bug, and so is a splitter holding more than one maximal
frame. libFuzzer (atheris) mutates a seed corpus of valid frames of every type; without
atheris, the same checks run on random and randomly mutated frames.

    python libs/protocol/fuzz/fuzz_codec.py [runs] [--engine auto|atheris|random]

runs defaults to 1 000 000: about a minute on one core with atheris (~17k runs/s), under
half a minute with the random engine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import random
import sys
import tempfile
import time
from pathlib import Path

from balans_protocol.auth import TAG_BYTES, tag
from balans_protocol.errors import ProtocolError
from balans_protocol.frames import MAX_FRAME_BYTES, FrameSplitter, decode_frame, encode_frame
from balans_protocol.strategies import frames

KEY = bytes(range(32))


def check(data: bytes) -> None:
    """One fuzz input; raises on any misbehaviour of the codec."""
    candidates = [data]
    if len(data) > TAG_BYTES:
        candidates.append(data[:-TAG_BYTES] + tag(KEY, data[:-TAG_BYTES]))
    for candidate in candidates:
        with contextlib.suppress(ProtocolError):
            decode_frame(candidate, KEY)
    splitter = FrameSplitter()
    try:
        for frame in splitter.feed(data):
            with contextlib.suppress(ProtocolError):
                decode_frame(frame, KEY)
    except ProtocolError:
        pass
    if splitter.buffered > MAX_FRAME_BYTES:
        raise AssertionError(f"splitter holds {splitter.buffered} bytes")


def seed_frames(count: int = 200) -> list[bytes]:
    """Valid frames of every type (hypothesis examples), as mutation seeds."""
    return [encode_frame(frames.example(), KEY) for _ in range(count)]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    raw = bytearray(frame)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        pos = rng.randrange(len(raw) + 1)
        if op < 0.5 and raw:
            raw[min(pos, len(raw) - 1)] ^= rng.randint(1, 255)
        elif op < 0.75:
            del raw[pos : pos + rng.randint(1, 16)]
        else:
            raw[pos:pos] = rng.randbytes(rng.randint(1, 16))
    return bytes(raw)


def fuzz_without_atheris(runs: int) -> None:
    rng = random.Random(20_260_101)
    seeds = seed_frames()
    started = time.perf_counter()
    for i in range(runs):
        if i % 4 == 0:
            check(rng.randbytes(rng.randint(0, 96)))
        else:
            check(mutate(rng, rng.choice(seeds)))
    elapsed = time.perf_counter() - started
    print(f"fuzz-protocol runs={runs} seconds={elapsed:.1f} failures=0 engine=random")


def fuzz_with_atheris(runs: int) -> None:
    import atheris

    corpus = Path(tempfile.mkdtemp(prefix="balans-fuzz-"))
    for i, frame in enumerate(seed_frames()):
        (corpus / f"seed{i}").write_bytes(frame)
    atheris.instrument_all()  # coverage feedback from every loaded module, the codec included
    atheris.Setup(  # libFuzzer prints "Done <runs> runs" and exits; a crash exits non-zero
        [sys.argv[0], f"-runs={runs}", "-max_len=4096", "-print_final_stats=1", str(corpus)],
        check,
    )
    atheris.Fuzz()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=int, nargs="?", default=1_000_000)
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    args = parser.parse_args()
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "random"
    if engine == "atheris":
        fuzz_with_atheris(args.runs)
    else:
        fuzz_without_atheris(args.runs)


if __name__ == "__main__":
    main()
