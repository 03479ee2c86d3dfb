"""Recently proven HELLO nonces, to tell a replayed HELLO at its first frame.

The challenge-proof exchange (docs/protocol.md, "Handshake") already makes a replayed HELLO
harmless: the replayer cannot answer the server's challenge. Remembering the nonces of the
last sessions a concentrator opened lets ingest refuse the commonest replay (a HELLO
recorded off the wire) at once, name it in the log and count it, instead of holding a
connection open until the proof times out. The memory is bounded per concentrator and
lost on restart; an older replay still fails its proof (and is counted there).
"""

from __future__ import annotations

from collections import deque

REMEMBERED_PER_CONCENTRATOR = 16


class RecentHellos:
    """The client nonces of each concentrator's last proven HELLOs."""

    def __init__(self, per_concentrator: int = REMEMBERED_PER_CONCENTRATOR) -> None:
        self._per_concentrator = per_concentrator
        self._nonces: dict[int, deque[bytes]] = {}

    def seen(self, serial: int, nonce: bytes) -> bool:
        """Whether ``nonce`` opened one of ``serial``'s recent sessions."""
        return nonce in self._nonces.get(serial, ())

    def remember(self, serial: int, nonce: bytes) -> None:
        """Note the nonce of a HELLO whose sender proved the key."""
        recent = self._nonces.get(serial)
        if recent is None:
            recent = self._nonces[serial] = deque(maxlen=self._per_concentrator)
        recent.append(nonce)
