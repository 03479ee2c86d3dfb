"""uvicorn's httptools protocol sending an answer's head and body in one write.

uvicorn writes an answer's status line and headers as soon as the app starts it, then the
body: two system calls, two TCP segments, and a client that wakes for the head alone and
again for the body. On loopback (PostgreSQL and the load both on the api's two cores) each
write also runs the receiver's network stack and wakes it, which showed as a quarter of
a worker's samples at the head's write (py-spy, the benchmark's mix). Here the writes a
response makes in one turn of the event loop leave together at the end of that turn: a
Starlette answer sends its head and body without waiting in between, so they go as one;
a streamed answer's chunks still go out as they come, one turn later at most."""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _JoinedWrites:
    """The connection's transport as uvicorn sees it: ``write`` keeps the data until the
    end of the event loop's turn, ``close`` sends what is kept first; the rest is the
    transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._kept:
            self._loop.call_soon(self._send)
        self._kept.append(bytes(data))

    def _send(self) -> None:
        if self._kept:
            data = b"".join(self._kept)
            self._kept.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self._send()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """``uvicorn.Config(http=OneWriteProtocol)``: HTTP/1.1 by httptools, whose writes of
    one turn leave in one system call."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _JoinedWrites(transport, self.loop)  # type: ignore[assignment]
