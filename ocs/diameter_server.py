"""Diameter over TCP: a thin asyncio ``Protocol`` around the sans-IO peer of ``diameter_apps``.

Per connection: bytes in → ``peer.receive_data`` → events; application requests go to the
router's handler; whatever the peer queued is written; one ``call_at`` timer is re-armed from
``peer.next_timer()``. A handler that returns a future (or another awaitable) is completed with
a done-callback, never a task of our own, and a handler that fails still gets an answer (5012
UNABLE_TO_COMPLY, or the error's own wire code) so no request is ever left unanswered.

Writes are coalesced: answers completed in one event-loop turn (a Redis reply batch resolves
many ledger calls at once) are queued in the peer and leave in one ``transport.write`` from a
flush scheduled once per turn, instead of one system call per answer. Order is the peer's queue
order, and ``should_close`` is honoured at that flush.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import socket
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import structlog

from diameter_apps.answers import answer_for_error
from diameter_apps.codec import Message
from diameter_apps.dictionary import default_dictionary
from diameter_apps.duplicates import DuplicateCache
from diameter_apps.errors import DiameterError, UnableToComply
from diameter_apps.events import (
    AnswerReceived,
    DuplicateAnswered,
    ErrorAnswered,
    PeerClosed,
    PeerOpened,
    ProtocolDeviation,
    RequestReceived,
    RequestTimedOut,
)
from diameter_apps.limits import CodecLimits
from diameter_apps.peer import PeerConnection, PeerSettings
from diameter_apps.router import Router
from diameter_apps.validation import Profile
from ocs.config import DiameterConfig
from ocs.metrics import CounterSeries, HistogramSeries, Metrics

if TYPE_CHECKING:
    from ocs.diameter_tls import TlsListener

COMMAND_NAMES = {
    257: "CER",
    280: "DWR",
    282: "DPR",
    272: "CCR",
    258: "RAR",
    274: "ASR",
    275: "STR",
}

Log = structlog.typing.FilteringBoundLogger


def command_name(code: int) -> str:
    """A bounded label for metrics: known commands by name, anything else as 'other'."""
    return COMMAND_NAMES.get(code, "other")


def advertised_addresses(listen_host: str) -> tuple[str, ...]:
    """Host-IP-Address values for the CEA: the listen address, or this host's for a wildcard."""
    if listen_host not in ("", "0.0.0.0", "::"):
        return (listen_host,)
    try:
        return (socket.gethostbyname(socket.gethostname()),)
    except OSError:
        return ("127.0.0.1",)


def peer_settings(config: DiameterConfig, *, origin_state_id: int) -> PeerSettings:
    return PeerSettings(
        origin_host=config.origin_host,
        origin_realm=config.origin_realm,
        host_ip_addresses=advertised_addresses(config.listen_host),
        product_name=config.product_name,
        vendor_id=config.vendor_id,
        origin_state_id=origin_state_id,
        allowed_peer_hosts=frozenset(config.allowed_peers) if config.allowed_peers else None,
        watchdog_interval_s=config.watchdog_s,
        watchdog_jitter_s=config.watchdog_jitter_s,
        cer_timeout_s=config.cer_timeout_s,
        drain_timeout_s=config.shutdown_grace_s,
        profile=Profile.LENIENT if config.lenient else Profile.STRICT,
        limits=CodecLimits(
            message_bytes_max=config.message_bytes_max,
            avps_max=config.avps_max,
            avp_depth_max=config.avp_depth_max,
        ),
    )


class DiameterConnection(asyncio.Protocol):
    """One TCP connection: feeds the sans-IO peer, runs handlers, re-arms one timer."""

    def __init__(self, server: DiameterServer) -> None:
        self.server = server
        self.loop = server.loop
        self.peer: PeerConnection | None = None
        self.transport: asyncio.Transport | None = None
        self.remote = "?"
        self.origin_host: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pending: dict[int, asyncio.Future[Message | None]] = {}
        # A flush is queued with call_soon (answers completed outside data_received), or we are
        # inside data_received / a timer, whose own flush at the end covers every answer.
        self._flush_queued = False
        self._in_io = False

    # -- asyncio callbacks ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.start(transport, self.server.settings)

    def start(self, transport: asyncio.BaseTransport, settings: PeerSettings) -> None:
        """Begin serving ``transport`` (TCP, or TLS once its handshake is done) as a peer."""
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peername = transport.get_extra_info("peername")
        self.remote = f"{peername[0]}:{peername[1]}" if peername else "?"
        self.peer = PeerConnection(
            settings,
            self.server.router,
            self.server.duplicates,
            self.loop.time(),
            output_ready=self._queue_flush,
        )
        self.server.connections.add(self)
        self.server.metrics.connections_total.inc()
        self._after_io(self.peer.handle_timer(self.loop.time()))

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            return
        self._after_io(self.peer.receive_data(data, self.loop.time()))

    def eof_received(self) -> bool | None:
        return None  # let connection_lost tidy up

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.server.connections.discard(self)
        if self.peer is not None:
            events = self.peer.connection_lost(self.loop.time())
            self.transport = None
            self._handle_events(events)
        for future in self._pending.values():
            if not future.done():
                future.set_result(None)
        self._pending.clear()

    # -- event handling ------------------------------------------------------------------
    def _after_io(self, events: list[Any]) -> None:
        self._in_io = True
        try:
            self._handle_events(events)
        finally:
            self._in_io = False
        self._flush()

    def _handle_events(self, events: list[Any]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self._dispatch(event)
            elif isinstance(event, PeerOpened):
                self.origin_host = event.origin_host
                self.server.peer_opened(self, event)
            elif isinstance(event, PeerClosed):
                self.server.peer_closed(self, event)
            elif isinstance(event, AnswerReceived):
                future = self._pending.pop(event.hop_by_hop, None)
                if future is not None and not future.done():
                    future.set_result(event.message)
            elif isinstance(event, RequestTimedOut):
                future = self._pending.pop(event.hop_by_hop, None)
                if future is not None and not future.done():
                    future.set_result(None)
            elif isinstance(event, ProtocolDeviation):
                self.server.metrics.deviations_total.inc()
                self.server.log.info(
                    "diameter_protocol_deviation", peer=self.remote, what=event.description
                )
            elif isinstance(event, ErrorAnswered):
                self.server.error_answered(self, event)
            elif isinstance(event, DuplicateAnswered):
                self.server.metrics.duplicates_total.inc()

    def _dispatch(self, event: RequestReceived) -> None:
        server = self.server
        # The command's series from the server's table (a C lookup), created on first use.
        command = server.by_command.get(event.command_code) or server.command_metrics(
            event.command_code
        )
        command.requests.value += 1
        try:
            # A handler that answers through a continuation (the CCR hot path): no future and
            # no event-loop pass between its ledger reply and the answer. Found once per
            # (application, command): a route, once registered, never changes.
            respond_to = server.responders.get((event.application_id, event.command_code))
            if respond_to is not None:
                respond_to(event, functools.partial(self._respond, event))
                return
            handler = server.router.handler_for(event.application_id, event.command_code)
            respond_to = getattr(handler, "respond_to", None)
            if respond_to is not None:
                server.responders[(event.application_id, event.command_code)] = respond_to
                respond_to(event, functools.partial(self._respond, event))
                return
            result = handler(event)
        except DiameterError as error:
            self._answer_error(event, error)
            return
        except Exception as exc:
            self._answer_failure(event, exc)
            return
        if isinstance(result, Message):
            self._send_answer(event, result)
            return
        if isinstance(result, asyncio.Future):
            future: asyncio.Future[Message] = result
        elif inspect.isawaitable(result):
            future = asyncio.ensure_future(result)
        else:
            self._send_answer(event, result)
            return
        if future.done():
            self._complete(event, future)
        else:
            future.add_done_callback(functools.partial(self._complete, event))

    def _complete(self, event: RequestReceived, done: asyncio.Future[Message]) -> None:
        if done.cancelled():
            self._answer_error(
                event, UnableToComply("request cancelled during shutdown"), remember=False
            )
            return
        error = done.exception()
        if error is None:
            self._send_answer(event, done.result())
        elif isinstance(error, DiameterError):
            self._answer_error(event, error)
        else:
            self._answer_failure(event, error)

    def _respond(
        self, event: RequestReceived, answer: Message | None, error: BaseException | None
    ) -> None:
        """A ``respond_to`` handler's answer (or the error to answer with). Called from other
        protocols' callbacks (a Redis reply): whatever goes wrong here stays here."""
        try:
            if error is None and answer is not None:
                self._send_answer(event, answer)
            elif isinstance(error, asyncio.CancelledError):
                self._answer_error(
                    event, UnableToComply("request cancelled during shutdown"), remember=False
                )
            elif isinstance(error, DiameterError):
                self._answer_error(event, error)
            else:
                self._answer_failure(event, error or RuntimeError("handler answered nothing"))
        except Exception as exc:
            self.server.log.error(
                "diameter_answer_failed",
                peer=self.remote,
                command=event.command_code,
                error=repr(exc),
            )

    def _answer_failure(self, event: RequestReceived, exc: BaseException) -> None:
        self.server.log.error(
            "diameter_handler_failed",
            peer=self.remote,
            command=event.command_code,
            error=repr(exc),
        )
        # Not remembered: a retransmission may succeed where this attempt failed.
        self._answer_error(
            event, UnableToComply("internal error while handling the request"), remember=False
        )

    def _answer_error(
        self, event: RequestReceived, error: DiameterError, *, remember: bool = True
    ) -> None:
        """The error's answer; a transient one (3004) is never replayed to a retransmission."""
        if self.peer is None:
            return
        settings = self.server.settings
        answer = answer_for_error(
            event.message,
            error,
            origin_host=settings.origin_host,
            origin_realm=settings.origin_realm,
        )
        self._send_answer(event, answer, remember=remember and not error.transient)

    def _send_answer(
        self, event: RequestReceived, answer: Message, *, remember: bool = True
    ) -> None:
        if self.peer is None:
            return
        now = self.loop.time()
        self.peer.send_answer(event, answer, now, remember=remember)
        server = self.server
        command = server.by_command.get(event.command_code) or server.command_metrics(
            event.command_code
        )
        code = answer.result_code
        (command.by_result.get(code) or command.answers(code)).value += 1
        # HistogramSeries.observe, inline (once per answer): the bucket "le" the latency.
        latency, seconds = command.latency, now - event.received_at
        if seconds < 0.0:
            seconds = 0.0
        latency.counts[bisect_left(latency.bounds, seconds)] += 1
        latency.total += seconds
        if not self._in_io and not self._flush_queued:
            # _queue_flush, inline.
            self._flush_queued = True
            self.loop.call_soon(self._queued_flush)

    # -- output and timer ----------------------------------------------------------------
    def _queue_flush(self) -> None:
        """Write what the peer queued at the end of this event-loop turn (once per turn)."""
        if not self._flush_queued:
            self._flush_queued = True
            self.loop.call_soon(self._queued_flush)

    def _queued_flush(self) -> None:
        self._flush_queued = False
        self._flush()

    def _flush(self) -> None:
        peer, transport = self.peer, self.transport
        if peer is None or transport is None:
            return
        data = peer.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if peer.should_close:
            transport.close()
            return
        when = peer.next_timer()
        armed = self._timer_at
        if self._timer is not None and armed is not None and when is not None and armed <= when:
            return  # _arm_timer's usual case, without the call (see there)
        self._arm_timer(when)

    def _arm_timer(self, when: float | None) -> None:
        armed = self._timer_at
        if self._timer is not None and armed is not None and when is not None and armed <= when:
            # Every message received pushes the watchdog back, so ``when`` moves on each turn:
            # the timer already armed for it (or earlier) stays, and when it fires the peer
            # finds nothing due yet and the flush after it arms the one then due. Cancelling
            # and re-arming per turn cost a timer handle and two libuv calls per request.
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None:
            self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.peer is not None:
            self._after_io(self.peer.handle_timer(self.loop.time()))

    # -- server-initiated requests (RAR / ASR) -------------------------------------------
    def send_request(self, message: Message, timeout_s: float) -> asyncio.Future[Message | None]:
        """Send ``message``; the future resolves to the answer, or None on timeout/close."""
        future: asyncio.Future[Message | None] = self.loop.create_future()
        if self.peer is None or self.transport is None:
            future.set_result(None)
            return future
        hop_by_hop = self.peer.send_request(message, self.loop.time(), timeout_s)
        self._pending[hop_by_hop] = future
        self._flush()
        return future

    def begin_shutdown(self) -> None:
        if self.peer is not None:
            self._after_io(self.peer.begin_shutdown(self.loop.time()))


class CommandMetrics:
    """The series one command counts into, bound once: a request costs no label lookups."""

    __slots__ = ("_family", "by_result", "latency", "name", "requests")

    def __init__(self, metrics: Metrics, name: str) -> None:
        self.name = name
        self._family = metrics.answers_total
        self.requests: CounterSeries = metrics.requests_total.labels(name)
        self.latency: HistogramSeries = metrics.latency_seconds.labels(name)
        # Read directly on the hot path (a dict lookup instead of a call to ``answers``).
        self.by_result: dict[int | None, CounterSeries] = {}

    def answers(self, result_code: int | None) -> CounterSeries:
        series = self.by_result.get(result_code)
        if series is None:
            label = str(result_code) if result_code is not None else "none"
            series = self.by_result[result_code] = self._family.labels(self.name, label)
        return series


class DiameterServer:
    """Listening socket, the shared duplicate cache, and the set of live connections."""

    def __init__(
        self,
        config: DiameterConfig,
        router: Router,
        metrics: Metrics,
        log: Log,
    ) -> None:
        self.config = config
        # Origin-State-Id changes with every start so peers can tell we restarted (RFC 6733 8.16).
        self.settings = peer_settings(config, origin_state_id=int(time.time()))
        self.router = router
        self.metrics = metrics
        self.log = log
        self.loop = asyncio.get_running_loop()
        self.duplicates = DuplicateCache()
        self.connections: set[DiameterConnection] = set()
        self.open_peers: dict[str, DiameterConnection] = {}
        self._server: asyncio.base_events.Server | None = None
        # Diameter over TLS (ocs.diameter_tls), when [diameter] tls_listen_port is set.
        self.tls: TlsListener | None = None
        self.tls_address: tuple[str, int] | None = None
        # Series by command code (unknown codes under -1); read directly on the hot path.
        self.by_command: dict[int, CommandMetrics] = {}
        # Continuation handlers (``respond_to``) by (application, command), once routed.
        self.responders: dict[tuple[int, int], Callable[[RequestReceived, Any], None]] = {}

    def command_metrics(self, command_code: int) -> CommandMetrics:
        """The metric series of a command (unknown codes share the 'other' series)."""
        series = self.by_command.get(command_code)
        if series is None:
            name = command_name(command_code)
            # Unknown codes share one entry, so a peer cannot grow this table.
            key = command_code if name != "other" else -1
            series = self.by_command.get(key)
            if series is None:
                series = self.by_command[key] = CommandMetrics(self.metrics, name)
        return series

    async def start(self) -> tuple[str, int]:
        # Built once per process; built here, not by the first peer's CER (≈0.5 s of CPU).
        default_dictionary()
        self._server = await self.loop.create_server(
            lambda: DiameterConnection(self),
            self.config.listen_host,
            self.config.listen_port,
            reuse_address=True,
            reuse_port=self.config.reuse_port or None,
            backlog=1024,
        )
        sockname = self._server.sockets[0].getsockname()
        if self.config.tls_listen_port is not None:
            await self._start_tls()
        return str(sockname[0]), int(sockname[1])

    async def _start_tls(self) -> None:
        """The TLS/TCP listener (TlsConfigError, naming the file, if the files are unusable)."""
        # Imported here: the TLS module builds on this one (and plain TCP needs none of it).
        from ocs.diameter_tls import TlsContextSource, TlsListener, listen_socket

        tls_port = self.config.tls_listen_port
        assert tls_port is not None
        source = TlsContextSource(self.config, self.log)
        sock = listen_socket(self.config.listen_host, tls_port, self.config.reuse_port)
        self.tls = TlsListener(self, source, sock)
        self.tls.start()
        self.tls_address = self.tls.address

    @property
    def open_peer_count(self) -> int:
        return len(self.open_peers)

    def peer_opened(self, conn: DiameterConnection, event: PeerOpened) -> None:
        self.open_peers[event.origin_host] = conn
        self.metrics.peers_connected.set(len(self.open_peers))
        self.log.info(
            "diameter_peer_up",
            peer=conn.remote,
            origin_host=event.origin_host,
            origin_realm=event.origin_realm,
            applications=list(event.application_ids),
        )

    def peer_closed(self, conn: DiameterConnection, event: PeerClosed) -> None:
        if conn.origin_host is not None and self.open_peers.get(conn.origin_host) is conn:
            del self.open_peers[conn.origin_host]
        self.metrics.peers_connected.set(len(self.open_peers))
        self.log.info(
            "diameter_peer_down",
            peer=conn.remote,
            origin_host=conn.origin_host,
            reason=event.reason,
        )

    def error_answered(self, conn: DiameterConnection, event: ErrorAnswered) -> None:
        self.metrics.decode_errors_total.labels(str(event.result_code)).inc()
        reason = event.error_message
        self.metrics.answers_total.labels(
            command_name(event.command_code), str(event.result_code)
        ).inc()
        self.log.debug(
            "diameter_error_answer",
            peer=conn.remote,
            command=event.command_code,
            result_code=event.result_code,
            reason=reason,
        )

    def connection_for(self, origin_host: str) -> DiameterConnection | None:
        return self.open_peers.get(origin_host)

    async def shutdown(self, grace_s: float) -> None:
        """Stop accepting, let each peer finish in-flight requests and exchange DPR/DPA."""
        if self._server is not None:
            self._server.close()
        if self.tls is not None:
            await self.tls.close()
        for conn in list(self.connections):
            conn.begin_shutdown()
        deadline = self.loop.time() + grace_s
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()


def build_router(
    register: Callable[[Router], None] | None = None,
) -> Router:
    """The application router of a server process; ``register`` adds the applications."""
    router = Router()
    if register is not None:
        register(router)
    return router
