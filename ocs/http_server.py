"""The admin/accounting HTTP listener: health, metrics, and endpoints other components register.

HTTP/1.1 parsing is h11's (sans-IO); this module is the thin asyncio ``Protocol`` around it plus
a small router. Every request gets an answer: unknown path 404, wrong method 405 with Allow,
oversized body 413, unparsable request 400, handler failure 500 — always JSON bodies.

Nothing may hold a connection for ever (like the Diameter side's CER timeout): a request must
arrive whole (head and body) within ``request_timeout_s`` of its first byte, else 408 and close
(a request line that never ends included); a keep-alive connection idle for ``idle_timeout_s``
is closed; past ``connections_max`` open connections a new one is closed at once. One timer per
server sweeps every connection against the server's clock (``check_timeouts``), so a test moves
the clock and sweeps instead of waiting.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import h11

from ocs.metrics import Metrics


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; raises HttpError(400) with the parser's reason when it is not."""
        try:
            return json.loads(self.body or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def json(cls, status: int, payload: Any) -> HttpResponse:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode() + b"\n")


class HttpError(Exception):
    """A handler's refusal, carrying the status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class HttpRouter:
    """Explicit routes: ``add("POST", "/v1/calls/{reservation}/end", handler)``."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        regex = re.compile(
            "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        )
        self._routes.append((method.upper(), regex, handler))

    def match(self, method: str, path: str) -> tuple[Handler | None, dict[str, str], list[str]]:
        """(handler, path params, allowed methods for the path when the method did not match)."""
        allowed: list[str] = []
        for route_method, regex, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method:
                return handler, found.groupdict(), []
            allowed.append(route_method)
        return None, {}, allowed


class _HttpConnection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=server.request_bytes_max)
        self._transport: asyncio.Transport | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False
        # When the request being read began (None between requests) / the connection went idle.
        self.request_started: float | None = None
        self.idle_since = server.clock()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        if not self._server.admit(self):
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.request_started is None and not self._busy:
            self.request_started = self._server.clock()
        self._conn.receive_data(data)
        self._pump()

    def check_timeout(self, now: float, request_timeout_s: float, idle_timeout_s: float) -> None:
        """408 and close a request not read whole in time; close a connection idle too long."""
        if self._busy or self._transport is None:
            return  # answering: the handler's own bounds apply
        if self.request_started is not None:
            if now - self.request_started >= request_timeout_s:
                self._send_and_close(408, f"request not complete in {request_timeout_s:g} s")
        elif now - self.idle_since >= idle_timeout_s:
            self._close()

    def eof_received(self) -> bool | None:
        self._conn.receive_data(b"")
        self._pump()
        return None

    def _pump(self) -> None:
        while not self._busy:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                self._send_and_close(exc.error_status_hint, f"bad request: {exc}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._server.request_bytes_max:
                    self._send_and_close(413, "request body too large")
                    return
            elif isinstance(event, h11.EndOfMessage) and self._request is not None:
                self._busy = True
                self.request_started = None
                request, self._request = self._request, None
                self._server.loop.create_task(self._dispatch(request, bytes(self._body)))

    async def _dispatch(self, raw: h11.Request, body: bytes) -> None:
        target = raw.target.decode("latin-1")
        path, _, query = target.partition("?")
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw.headers}
        method = raw.method.decode("ascii", "replace").upper()
        response = await self._server.handle(
            HttpRequest(method=method, path=path, query=query, headers=headers, body=body)
        )
        self._write(response)
        self._busy = False
        self.idle_since = self._server.clock()
        if self._conn.our_state is h11.MUST_CLOSE or self._conn.their_state is h11.MUST_CLOSE:
            self._close()
            return
        try:
            self._conn.start_next_cycle()
        except h11.LocalProtocolError:
            self._close()
            return
        self._pump()

    def _write(self, response: HttpResponse) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        metrics = self._server.metrics
        if isinstance(metrics, Metrics):
            metrics.http_requests_total.labels(str(response.status)).inc()
        try:
            data = self._conn.send(h11.Response(status_code=response.status, headers=headers))
            data += self._conn.send(h11.Data(data=response.body)) or b""
            data += self._conn.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError:
            self._close()
            return
        self._transport.write(data)

    def _send_and_close(self, status: int, message: str) -> None:
        if self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self._write(HttpResponse.json(status, {"error": message}))
        self._close()

    def _close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.forget(self)


class Renders(Protocol):
    """What ``/metrics`` serves: ``ocs.metrics.Metrics`` or another process's registry."""

    def render(self) -> bytes: ...


class HttpServer:
    """Owns the listening socket and the router; ``/healthz`` and ``/metrics`` are built in."""

    def __init__(
        self,
        router: HttpRouter,
        metrics: Metrics | Renders,
        *,
        health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
        request_bytes_max: int = 65536,
        request_timeout_s: float = 10.0,
        idle_timeout_s: float = 60.0,
        connections_max: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if min(request_timeout_s, idle_timeout_s) <= 0 or connections_max <= 0:
            raise ValueError("HTTP timeouts and connections_max must be positive")
        self.router = router
        self.metrics = metrics
        self.request_bytes_max = request_bytes_max
        self.request_timeout_s = request_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.connections_max = connections_max
        self.clock = clock
        self._health = health
        self._server: asyncio.base_events.Server | None = None
        self._connections: set[_HttpConnection] = set()
        self._sweep: asyncio.TimerHandle | None = None
        self.loop = asyncio.get_running_loop()
        router.add("GET", "/healthz", self._healthz)
        router.add("GET", "/metrics", self._metrics)

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await self.loop.create_server(
            lambda: _HttpConnection(self), host, port, reuse_address=True
        )
        sockname = self._server.sockets[0].getsockname()
        self._schedule_sweep()
        return str(sockname[0]), int(sockname[1])

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def admit(self, connection: _HttpConnection) -> bool:
        if len(self._connections) >= self.connections_max:
            return False
        self._connections.add(connection)
        return True

    def forget(self, connection: _HttpConnection) -> None:
        self._connections.discard(connection)

    def check_timeouts(self) -> None:
        """Apply the request and idle bounds to every connection, at ``clock()`` now."""
        now = self.clock()
        for connection in list(self._connections):
            connection.check_timeout(now, self.request_timeout_s, self.idle_timeout_s)

    def _schedule_sweep(self) -> None:
        # A quarter of the shorter bound: a connection is closed at most 25 % late.
        interval = max(0.05, min(self.request_timeout_s, self.idle_timeout_s) / 4)
        self._sweep = self.loop.call_later(interval, self._swept)

    def _swept(self) -> None:
        self.check_timeouts()
        self._schedule_sweep()

    async def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def handle(self, request: HttpRequest) -> HttpResponse:
        handler, params, allowed = self.router.match(request.method, request.path)
        if handler is None:
            if allowed:
                return HttpResponse(
                    405,
                    json.dumps({"error": f"method {request.method} not allowed"}).encode(),
                    headers=(("allow", ", ".join(sorted(set(allowed)))),),
                )
            return HttpResponse.json(404, {"error": f"no such path: {request.path}"})
        try:
            return await handler(
                HttpRequest(
                    request.method,
                    request.path,
                    request.query,
                    request.headers,
                    request.body,
                    params,
                )
            )
        except HttpError as exc:
            return HttpResponse.json(exc.status, {"error": exc.message})
        except Exception as exc:  # a handler bug must still produce an answer
            return HttpResponse.json(500, {"error": f"internal error: {type(exc).__name__}"})

    async def _healthz(self, request: HttpRequest) -> HttpResponse:
        report: dict[str, Any] = {"status": "ok"}
        if self._health is not None:
            report = await self._health()
        return HttpResponse.json(200 if report.get("status") == "ok" else 503, report)

    async def _metrics(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(
            200, self.metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8"
        )
