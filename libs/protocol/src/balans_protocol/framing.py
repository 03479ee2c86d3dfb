"""Reading whole frames from an asyncio stream, the size checked before the read."""

from __future__ import annotations

import asyncio

from balans_protocol.frames import LENGTH, frame_length


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next complete frame. Raises ``ProtocolError(OVERSIZE)`` on a bad length prefix
    (before anything of the frame is buffered) and ``asyncio.IncompleteReadError`` when
    the peer closes mid-frame or between frames."""
    prefix = await reader.readexactly(LENGTH.size)
    total = frame_length(prefix)
    return prefix + await reader.readexactly(total - LENGTH.size)
