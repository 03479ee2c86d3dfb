"""A concentrator's boot counter that never repeats, kept in a small state file.

The JetStream message id of a batch is ``<concentrator>.<boot>.<seq>`` and sequence
numbers restart at 1 with every start (docs/protocol.md, "Sequence numbers"). A
concentrator that starts again with a boot counter it used before reuses message ids, and
JetStream drops its new batches as resends of the old ones while ingest ACKs them: silent
data loss. So every start takes a new counter and stores it *before* the first HELLO.

The new counter is ``max(stored + 1, Unix time in seconds)``: the stored value makes it
grow at every start even if the clock steps back, the clock keeps it new when the state
file is lost (a fresh device, a wiped disk), since earlier starts cannot have counted
past the present unless they restarted more than once a second on average.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import structlog

MAX_BOOT = 0xFFFF_FFFF  # u32 on the wire
log = structlog.get_logger("concentrator")


def next_boot(path: Path, clock: Callable[[], float] = time.time) -> int:
    """Take the next boot counter from the state file at ``path`` and store it durably
    (written beside, fsynced, renamed over, directory fsynced: a crash leaves the old or
    the new value, never a torn file). Raises ``OverflowError`` past 2**32 - 1."""
    boot = max(_stored(path) + 1, int(clock()))
    if boot > MAX_BOOT:
        raise OverflowError(f"boot counter {boot} does not fit in 32 bits ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w") as f:
        f.write(f"{boot}\n")
        f.flush()
        os.fsync(f.fileno())
    partial.replace(path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return boot


def _stored(path: Path) -> int:
    """The counter of the previous start; 0 when there is none or it cannot be read (the
    clock then keeps the new counter unused, see the module docstring)."""
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        try:
            return int(text)
        except ValueError:
            log.warning("boot counter file unreadable, counting from the clock", path=str(path))
    return 0
