"""Telling a resend from a reused boot counter when JetStream reports a duplicate.

JetStream recognises a batch by its message id ``<concentrator>.<boot>.<seq>`` and ACKs a
second copy without storing it. That is right for a resend. But a concentrator that
restarted with a boot counter it had used before numbers its *new* batches with old ids:
JetStream drops them too, ingest ACKs them, and the concentrator deletes readings nobody
stored (docs/protocol.md, "Sequence numbers").

Within one boot a concentrator's sequence numbers only grow, and its HELLO takes the next
one. So a session whose HELLO carries a seq this ingest instance has already seen in
the same boot comes from a restart that reused the boot counter: every duplicate in it is
a reset. Without that memory (ingest restarted, or the earlier session went to another
instance), a batch whose seq is above everything its session has seen, the proof
included, is sent for the first time; if JetStream already knows its id, that is a reset
too. Any other duplicate is a resend.
"""

from __future__ import annotations

import structlog

from balans_ingest.metrics import DUPLICATES

log = structlog.get_logger("ingest")


class SequenceMemory:
    """Each concentrator's latest boot and the highest seq seen in it, in this instance."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[int, int]] = {}  # serial -> (boot, highest seq)

    def went_back(self, serial: int, boot: int, seq: int) -> bool:
        """Whether ``seq`` of ``boot`` was reached before: the boot counter was reused."""
        last = self._last.get(serial)
        return last is not None and last[0] == boot and seq <= last[1]

    def saw(self, serial: int, boot: int, seq: int) -> None:
        last = self._last.get(serial)
        if last is None or last[0] != boot or seq > last[1]:
            self._last[serial] = (boot, seq)


class SessionSequences:
    """One session's sequence numbers: which batches only it can have sent, and whether
    its boot counter is one the concentrator had used already."""

    def __init__(
        self, memory: SequenceMemory, serial: int, boot: int, hello_seq: int, proof_seq: int
    ) -> None:
        self._memory = memory
        self._serial = serial
        self._boot = boot
        self._highest = proof_seq
        self.reused_boot = memory.went_back(serial, boot, hello_seq)
        if self.reused_boot:
            log.error(
                "the concentrator restarted with a boot counter it had used: its new batches "
                "reuse message ids and JetStream will drop them as duplicates",
                serial=serial,
                boot=boot,
                hello_seq=hello_seq,
            )
        memory.saw(serial, boot, proof_seq)

    def received(self, seq: int) -> bool:
        """Note an UPLOAD's seq; True when this session is the first to carry it."""
        first_sent_here = seq > self._highest
        self._highest = max(self._highest, seq)
        self._memory.saw(self._serial, self._boot, seq)
        return first_sent_here

    def duplicate(self, seq: int, *, first_sent_here: bool) -> None:
        """Count a batch JetStream already had, per concentrator and kind; log a reset."""
        reset = self.reused_boot or first_sent_here
        DUPLICATES.labels(concentrator=str(self._serial), kind="reset" if reset else "resend").inc()
        if reset:
            log.error(
                "a new batch reused the message id of an earlier start: JetStream dropped it "
                "and its readings are lost (fix the concentrator's boot counter)",
                serial=self._serial,
                boot=self._boot,
                seq=seq,
            )
