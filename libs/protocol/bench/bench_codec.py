"""Codec benchmark: records/s through the wire codec (first part of `make bench-ingest`).

Baseline, measured in the same run: ``struct.iter_unpack`` over the same PULSE bytes,
the least any Python decoder of this layout can do.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from balans_protocol.frames import Frame, Upload, decode_frame, encode_frame
from balans_protocol.records import PULSE, PulseRecord, decode_records, split_sections

KEY = bytes(range(32))
RECORDS_PER_FRAME = 500  # one concentrator subnet's hourly batch
FRAMES = 200
TS = 1_767_229_200


def _rate(records: int, work: Callable[[], object], repeat: int = 3) -> float:
    """Best records/s over ``repeat`` runs."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return records / best


def main() -> None:
    batches = [
        [
            PulseRecord(100_000 + f * 200 + i // 4, i % 4, TS, i * 7)
            for i in range(RECORDS_PER_FRAME)
        ]
        for f in range(FRAMES)
    ]
    total = RECORDS_PER_FRAME * FRAMES
    frames = [encode_frame(Frame(1, n + 1, Upload.of(b)), KEY) for n, b in enumerate(batches)]
    bodies = [Upload.of(b).payload for b in batches]
    encode = _rate(total, lambda: [encode_frame(Frame(1, 1, Upload.of(b)), KEY) for b in batches])
    verify = _rate(total, lambda: [decode_frame(f, KEY) for f in frames])
    decode = _rate(total, lambda: [decode_records(b) for b in bodies])
    validate = _rate(total, lambda: [split_sections(b) for b in bodies])
    baseline = _rate(total, lambda: [list(PULSE.iter_unpack(b[3:])) for b in bodies])
    print(f"codec records_per_frame={RECORDS_PER_FRAME} frame_bytes={len(frames[0])}")
    print(
        f"codec encode_records_per_s={encode:.0f} verify_frame_records_per_s={verify:.0f} "
        f"decode_objects_records_per_s={decode:.0f} validate_records_per_s={validate:.0f}"
    )
    print(
        f"codec baseline_struct_iter_unpack_per_s={baseline:.0f} "
        f"decode_ratio={decode / baseline:.2f}"
    )


if __name__ == "__main__":
    main()
