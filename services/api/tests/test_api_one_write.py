"""The served api writes an answer's head and body in one system call (``one_write``), and
answers stay whole: streamed, large, kept alive or closed after the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, StreamingResponse

from balans_api.one_write import _JoinedWrites
from balans_api.server import serving
from balans_core.health import bind_socket

pytestmark = pytest.mark.asyncio(loop_scope="session")

LARGE = b"x" * 3_000_000  # more than the socket buffers: the transport's flow control runs


class Transport(asyncio.Transport):
    """What the wrapper hands on, kept in order."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[object] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.sent.append(bytes(data))

    def close(self) -> None:
        self.sent.append("closed")

    def is_closing(self) -> bool:
        return "closed" in self.sent


async def test_writes_of_one_turn_leave_as_one() -> None:
    transport = Transport()
    joined = _JoinedWrites(transport, asyncio.get_running_loop())
    joined.write(b"HTTP/1.1 200 OK\r\n\r\n")
    joined.write(b"body")
    assert transport.sent == []
    await asyncio.sleep(0)
    assert transport.sent == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    joined.write(b"last")
    joined.close()  # what is kept leaves before the connection closes
    assert transport.sent[1:] == [b"last", "closed"]
    await asyncio.sleep(0)
    assert len(transport.sent) == 3


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/small")
    async def small() -> PlainTextResponse:
        return PlainTextResponse("small answer")

    @app.get("/large")
    async def large() -> PlainTextResponse:
        return PlainTextResponse(LARGE)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk {i};".encode()
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    return app


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    sock = bind_socket("127.0.0.1", 0)
    async with serving(_app(), sock):
        yield sock.getsockname()[1]


async def _get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, close: bool = False
) -> tuple[bytes, bytes]:
    connection = "Connection: close\r\n" if close else ""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n{connection}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head:
        body = b""
        while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        await reader.readexactly(2)
        return head, body
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"content-length")
    )
    return head, await reader.readexactly(length)


async def test_answers_stay_whole_on_one_kept_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path, expected in [
            ("/small", b"small answer"),
            ("/stream", b"chunk 0;chunk 1;chunk 2;"),
            ("/large", LARGE),
            ("/small", b"small answer"),
        ]:
            head, body = await _get(reader, writer, path)
            assert head.startswith(b"HTTP/1.1 200"), head
            assert body == expected
    finally:
        writer.close()


async def test_an_answer_before_closing_is_sent_whole(port: int) -> None:
    for path, expected in [("/small", b"small answer"), ("/large", LARGE)]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            head, body = await _get(reader, writer, path, close=True)
            assert b"connection: close" in head.lower()
            assert body == expected
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        finally:
            writer.close()
