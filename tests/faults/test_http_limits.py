"""Finding 5 of issue #11: the HTTP listener bounds how long a request may take to arrive and how
long a connection may sit idle; a request line that never ends gets 408 and a close. Time is
the test's clock: the server is swept explicitly after the clock moved, never by waiting."""

from __future__ import annotations

import asyncio
import json

from ocs.http_server import HttpRouter, HttpServer
from ocs.metrics import Metrics

REQUEST_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
READ_WAIT_S = 30.0  # generous: only bounds a broken test, never measures the server


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _server(clock: Clock, **limits: float | int) -> tuple[HttpServer, int]:
    server = HttpServer(
        HttpRouter(),
        Metrics(),
        request_timeout_s=REQUEST_TIMEOUT_S,
        idle_timeout_s=IDLE_TIMEOUT_S,
        clock=clock,
        **limits,  # type: ignore[arg-type]
    )
    _, port = await server.start("127.0.0.1", 0)
    return server, port


async def _connect(port: int, data: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    return reader, writer


async def _settled(server: HttpServer, connections: int) -> None:
    """Until the server has seen ``connections`` connections (accepting is asynchronous)."""
    async with asyncio.timeout(READ_WAIT_S):
        while server.connection_count != connections:
            await asyncio.sleep(0.01)


async def _reading(server: HttpServer) -> None:
    """Until the server has the first bytes of a request (its bound runs from them)."""
    async with asyncio.timeout(READ_WAIT_S):
        while not any(c.request_started is not None for c in server._connections):
            await asyncio.sleep(0.01)


async def test_a_half_sent_request_gets_408_and_is_closed_after_the_bound() -> None:
    clock = Clock()
    server, port = await _server(clock)
    reader, writer = await _connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    await _settled(server, 1)
    await _reading(server)
    clock.now += REQUEST_TIMEOUT_S - 1
    server.check_timeouts()
    assert server.connection_count == 1  # within the bound: still waiting
    clock.now += 2
    server.check_timeouts()
    async with asyncio.timeout(READ_WAIT_S):
        answer = await reader.read()  # everything up to the server's close
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "request not complete in 10 s"}
    writer.close()
    await _settled(server, 0)
    await server.close()


async def test_a_request_line_without_crlf_gets_an_answer() -> None:
    clock = Clock()
    server, port = await _server(clock)
    reader, writer = await _connect(port, b"GET /healthz HTTP/1.1")
    await _settled(server, 1)
    await _reading(server)
    clock.now += REQUEST_TIMEOUT_S + 1
    server.check_timeouts()
    async with asyncio.timeout(READ_WAIT_S):
        answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 408 ")
    writer.close()
    # And one that half-closes instead of waiting is answered 400 at once.
    reader, writer = await _connect(port, b"GET /healthz HTTP/1.1")
    writer.write_eof()
    async with asyncio.timeout(READ_WAIT_S):
        answer = await reader.read()
    assert answer.startswith(b"HTTP/1.1 400 ")
    writer.close()
    await server.close()


async def test_an_idle_keep_alive_connection_is_closed_without_an_answer() -> None:
    clock = Clock()
    server, port = await _server(clock)
    reader, writer = await _connect(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(READ_WAIT_S):
        await reader.readuntil(b"\r\n\r\n")
    clock.now += REQUEST_TIMEOUT_S + 1  # idle, not half-sent: the request bound does not apply
    server.check_timeouts()
    assert server.connection_count == 1
    clock.now += IDLE_TIMEOUT_S
    server.check_timeouts()
    async with asyncio.timeout(READ_WAIT_S):
        rest = await reader.read()
    assert b"408" not in rest  # closed quietly: nothing was asked
    writer.close()
    await server.close()


async def test_connections_beyond_the_bound_are_closed_at_once() -> None:
    clock = Clock()
    server, port = await _server(clock, connections_max=3)
    held = [await _connect(port, b"GET /heal") for _ in range(3)]
    await _settled(server, 3)
    reader, writer = await _connect(port, b"")
    async with asyncio.timeout(READ_WAIT_S):
        assert await reader.read() == b""
    assert server.connection_count == 3
    for _, w in [*held, (reader, writer)]:
        w.close()
    await server.close()
