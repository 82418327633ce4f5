"""asyncio adapters for the SIP redirect server: UDP and TCP on the same port.

Thin by design (DESIGN.md §2.6): a ``DatagramProtocol`` / ``Protocol`` feeds bytes to the
sans-IO ``SipEndpoint``, performs the actions it returns, and re-arms one timer per transport
from ``next_timer()``. UDP uses a plain ``DatagramProtocol`` rather than ``asyncio-dgram``:
``benchmarks/bench_sip_transport.py`` measures both doing the same work, and the callback
protocol wins (see ``benchmarks/results/sip_transport.json``).
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable, Hashable
from typing import Any, cast

import structlog

from ocs.config import ConfigError, SipConfig
from ocs.logging_setup import make_logger
from ocs.sip.authorizer import CallAuthDecision, CallAuthRequest, CreditAuthorizer
from ocs.sip.endpoint import Action, Authorize, CheckHealth, Send, SipEndpoint
from ocs.sip.errors import SipFramingError
from ocs.sip.framing import Frame, StreamFramer
from ocs.sip.message import ParseLimits
from ocs.sip.metrics import DROP_CONNECTIONS, SipMetrics
from ocs.sip.redirect import RedirectPolicy, SourceFilter
from ocs.sip.transaction import Destination, TimerConfig, TransactionKey

Log = structlog.typing.FilteringBoundLogger

_BIND_ATTEMPTS = 8


class _Driver:
    """Runs one ``SipEndpoint``: performs its actions, owns its timer and authorizer tasks."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        authorizer: CreditAuthorizer,
        send: Callable[[bytes, Destination], None],
        authorize_timeout_s: float,
        log: Log,
    ) -> None:
        self.endpoint = endpoint
        self.log = log
        self._authorizer = authorizer
        self._send = send
        self._authorize_timeout_s = authorize_timeout_s
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.Handle | None = None
        self._timer_deadline = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        return self._loop.time()

    def feed(self, data: bytes, source: tuple[str, int], connection: Hashable | None) -> None:
        self.perform(self.endpoint.receive(data, source, self.now(), connection))

    def perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self._send(action.data, action.destination)
            elif isinstance(action, Authorize):
                self._spawn(self._authorize(action.ticket, action.request))
            elif isinstance(action, CheckHealth):
                self._spawn(self._check_health(action.ticket))
        self._rearm()

    def _spawn(self, coroutine: Any) -> None:
        task: asyncio.Task[None] = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _authorize(self, ticket: TransactionKey, request: CallAuthRequest) -> None:
        try:
            # asyncio.timeout, not wait_for: no second task per INVITE.
            async with asyncio.timeout(self._authorize_timeout_s):
                decision = await self._authorizer.authorize(request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any authorizer failure is a 503, never an unanswered INVITE
            self.log.warning("sip_authorizer_failed", call_id=request.call_id, error=repr(exc))
            self.perform(self.endpoint.authorization_failed(ticket, self.now()))
        else:
            if not isinstance(decision, CallAuthDecision):
                self.log.error("sip_authorizer_bad_decision", call_id=request.call_id)
                self.perform(self.endpoint.authorization_failed(ticket, self.now()))
                return
            self.perform(self.endpoint.authorized(ticket, decision, self.now()))

    async def _check_health(self, ticket: TransactionKey) -> None:
        try:
            async with asyncio.timeout(self._authorize_timeout_s):
                healthy = await self._authorizer.healthy()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.log.warning("sip_health_check_failed", error=repr(exc))
            healthy = False
        self.perform(self.endpoint.health_checked(ticket, bool(healthy), self.now()))

    def _rearm(self) -> None:
        deadline = self.endpoint.next_timer()
        if deadline is None:
            return  # an armed handle may fire early and find nothing due: harmless
        # Our own copy of the deadline: uvloop returns a plain Handle (no when()) for a
        # deadline already in the past.
        if self._timer is not None and self._timer_deadline <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.perform(self.endpoint.handle_timer(self.now()))

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, log: Log) -> None:
        self.log = log
        self.driver: _Driver | None = None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's and the selector loop's UDP transports do not all subclass
        # DatagramTransport, but all provide sendto/close/is_closing.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.driver is not None:
            self.driver.feed(data, (str(addr[0]), int(addr[1])), None)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for an earlier response: the client went away. Nothing to do.
        self.log.debug("sip_udp_error", error=repr(exc))

    def send(self, data: bytes, destination: Destination) -> None:
        if self.transport is not None and not self.transport.is_closing():
            assert isinstance(destination, tuple)
            self.transport.sendto(data, destination)


class _TcpConnection(asyncio.Protocol):
    """One TCP connection; the object itself is the destination handle of its responses."""

    def __init__(self, server: SipServer) -> None:
        self._server = server
        self._framer = StreamFramer(server.config.message_bytes_max)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        if len(self._server._connections) >= self._server.connections_max:
            self._server.log.warning(
                "sip_tcp_connection_refused", peer=self.peer, reason="connections_max"
            )
            self._server.metrics.dropped[DROP_CONNECTIONS] += 1
            self.transport.close()
            return
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        driver = self._server._tcp_driver
        if driver is None or self.transport is None:
            return
        try:
            events = self._framer.feed(data)
        except SipFramingError as error:
            driver.perform(
                driver.endpoint.refuse_stream(
                    self._framer.pending_head(), error.status, error.reason, self.peer, self
                )
            )
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, Frame):
                driver.feed(event.data, self.peer, self)
            else:
                self.write(b"\r\n")  # pong (RFC 5626 §3.5.1)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)


class SipServer:
    """The SIP credit-check redirect server: UDP and TCP on one port, one authorizer.

    ``ocs serve`` builds it with the ledger-backed authorizer and ``config.sip``, then calls
    ``await start()`` and, at shutdown, ``await close()``.
    """

    def __init__(
        self,
        authorizer: CreditAuthorizer,
        config: SipConfig,
        *,
        metrics: SipMetrics | None = None,
        timers: TimerConfig | None = None,
        authorize_timeout_s: float | None = None,
        connections_max: int | None = None,
        log: Log | None = None,
    ) -> None:
        """Limits come from ``config`` (the ``[sip]`` section); ``authorize_timeout_s`` and
        ``connections_max`` override it (tests), ``timers`` replaces RFC 3261 defaults."""
        self.authorizer = authorizer
        self.config = config
        self.log = log if log is not None else make_logger("info")
        self.connections_max = (
            config.tcp_connections_max if connections_max is None else connections_max
        )
        self.metrics = metrics or SipMetrics()
        self._timers = timers or TimerConfig()
        self._authorize_timeout_s = (
            config.authorize_timeout_s if authorize_timeout_s is None else authorize_timeout_s
        )
        self._limits = ParseLimits(
            message_bytes_max=config.message_bytes_max, headers_max=config.headers_max
        )
        try:
            SourceFilter(config.allowed_sources)
        except ValueError as exc:
            raise ConfigError(f"sip.allowed_sources: {exc}") from exc
        self._policy = RedirectPolicy(
            allowed_sources=config.allowed_sources,
            reject_unknown_sources=config.reject_unknown_sources,
            retry_after_s=config.retry_after_s,
        )
        self._transactions_max = config.transactions_max
        self._udp: _UdpProtocol | None = None
        self._udp_transport: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._udp_driver: _Driver | None = None
        self._tcp_driver: _Driver | None = None
        self._connections: set[_TcpConnection] = set()
        self.host: str = config.listen_host
        self.port: int = config.listen_port

    def _endpoint(self, transport: str) -> SipEndpoint:
        return SipEndpoint(
            transport=transport,
            limits=self._limits,
            policy=self._policy,
            metrics=self.metrics,
            timers=self._timers,
            inflight_max=self.config.receive_queue_max,
            transactions_max=self._transactions_max,
        )

    async def start(self, host: str | None = None, port: int | None = None) -> None:
        """Listen on UDP and TCP ``host:port`` (config values by default). Port 0 picks a free
        port, the same for both transports; ``self.port`` tells which."""
        host = self.config.listen_host if host is None else host
        port = self.config.listen_port if port is None else port
        loop = asyncio.get_running_loop()
        for attempt in range(_BIND_ATTEMPTS):
            udp_transport, udp = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self.log), local_addr=(host, port)
            )
            bound_port = int(udp_transport.get_extra_info("sockname")[1])
            try:
                self._tcp_server = await loop.create_server(
                    lambda: _TcpConnection(self), host, bound_port
                )
            except OSError as exc:
                udp_transport.close()
                if port != 0 or exc.errno != errno.EADDRINUSE or attempt == _BIND_ATTEMPTS - 1:
                    raise
                continue
            break
        self._udp, self._udp_transport = udp, udp_transport
        self.host, self.port = host, bound_port
        self._udp_driver = _Driver(
            self._endpoint("udp"), self.authorizer, udp.send, self._authorize_timeout_s, self.log
        )
        udp.driver = self._udp_driver
        self._tcp_driver = _Driver(
            self._endpoint("tcp"),
            self.authorizer,
            self._tcp_send,
            self._authorize_timeout_s,
            self.log,
        )
        self.log.debug("sip_sockets_bound", host=host, port=bound_port, transports=["udp", "tcp"])

    def _tcp_send(self, data: bytes, destination: Destination) -> None:
        if isinstance(destination, _TcpConnection):
            destination.write(data)

    async def close(self) -> None:
        """Stop listening, drop connections, cancel pending authorizations (their INVITEs go
        unanswered; the proxy retries elsewhere and the reservation key keeps that safe)."""
        if self._udp_transport is not None:
            self._udp_transport.close()
            self._udp_transport = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            for connection in list(self._connections):
                if connection.transport is not None:
                    connection.transport.close()
            await self._tcp_server.wait_closed()
            self._tcp_server = None
        for driver in (self._udp_driver, self._tcp_driver):
            if driver is not None:
                await driver.close()
        self._udp_driver = self._tcp_driver = None
