from __future__ import annotations

import asyncio
import json

from ocs.http_server import HttpError, HttpRequest, HttpResponse, HttpRouter, HttpServer
from ocs.metrics import Metrics


async def _exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    writer.close()
    return status, headers, body


async def _server() -> tuple[HttpServer, int]:
    router = HttpRouter()

    async def end_call(request: HttpRequest) -> HttpResponse:
        payload = request.json()
        if not isinstance(payload, dict) or "duration_s" not in payload:
            raise HttpError(422, "duration_s is required")
        return HttpResponse.json(200, {"reservation": request.params["reservation"], **payload})

    router.add("POST", "/v1/calls/{reservation}/end", end_call)
    server = HttpServer(router, Metrics(), request_bytes_max=1024)
    _, port = await server.start("127.0.0.1", 0)
    return server, port


async def test_healthz_and_metrics() -> None:
    server, port = await _server()
    status, _, body = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    status, headers, body = await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert b'ocs_http_requests_total{status="200"} 1.0' in body
    await server.close()


async def test_routes_params_and_errors() -> None:
    server, port = await _server()
    body = b'{"duration_s": 61}'
    req = (
        b"POST /v1/calls/abc/end HTTP/1.1\r\nHost: x\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    status, _, answer = await _exchange(port, req)
    assert status == 200 and json.loads(answer) == {"reservation": "abc", "duration_s": 61}

    bad = b"POST /v1/calls/abc/end HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}"
    status, _, answer = await _exchange(port, bad)
    assert status == 400 and b"not valid JSON" in answer

    status, _, answer = await _exchange(
        port, b"POST /v1/calls/abc/end HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert status == 422 and b"duration_s" in answer

    status, headers, _ = await _exchange(port, b"GET /v1/calls/abc/end HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 405 and headers["allow"] == "POST"

    status, _, _ = await _exchange(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404

    status, _, _ = await _exchange(port, b"GARBAGE\r\n\r\n")
    assert status == 400

    big = b"x" * 2048
    req = b"POST /v1/calls/a/end HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n" + big
    status, _, _ = await _exchange(port, req)
    assert status == 413
    await server.close()


async def test_keep_alive_serves_several_requests() -> None:
    server, port = await _server()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(3):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    writer.close()
    await server.close()
