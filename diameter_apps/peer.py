"""One Diameter peer connection, responder side (RFC 6733 §5, RFC 3539 watchdog), sans-IO.

Bytes and ``now`` (seconds, any monotonic origin) go in; events and bytes come out. The adapter
(``ocs``) owns the socket and one timer; this class owns every protocol decision.

The adapter's loop::

    peer = PeerConnection(settings, router, duplicates, now, output_ready=flush)
    # on bytes from the socket
    for event in peer.receive_data(data, now): ...
    transport.write(peer.data_to_send())
    if peer.should_close: transport.close()
    # re-arm the single timer at peer.next_timer() (absolute, None = no timer); when it fires:
    events = peer.handle_timer(now)
    # on RequestReceived(event): handler = router.handler_for(event.application_id,
    #   event.command_code); answer = handler(event) (await it if awaitable), then
    peer.send_answer(event, answer, now)     # always, even if the connection has closed
    # if the handler raised DiameterError: answer = answer_for_error(event.message, error, ...)
    # server-initiated requests (RAR/ASR):
    hop_by_hop = peer.send_request(message, now, timeout_s)  # → AnswerReceived/RequestTimedOut
    peer.begin_shutdown(now)       # drain in-flight, DPR, close on DPA or timeout
    peer.connection_lost(now)      # the transport is gone

Events (:mod:`diameter_apps.events`): PeerOpened, RequestReceived, AnswerReceived,
RequestTimedOut, PeerClosed, ProtocolDeviation (lenient-profile log line), ErrorAnswered (the
base answered an error itself), DuplicateAnswered. Events raised outside a call that returns
events (by ``send_answer`` or a duplicate answered for another connection) are returned by the
next call. ``output_ready`` is called when bytes were queued outside any call of this
connection's adapter (a duplicate waiting here got its answer on another connection): the
adapter should then write ``data_to_send()``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import msgspec

from diameter_apps.answers import answer_for_error, answer_to
from diameter_apps.capabilities import (
    Capabilities,
    PeerSettings,
    accepting_avps,
    evaluate_cer,
    rejecting_cea,
)
from diameter_apps.codec import Avp, Message, decode_message, replace_hop_by_hop
from diameter_apps.codes import (
    FLAG_PROXIABLE,
    FLAG_REQUEST,
    FLAG_RETRANSMIT,
    ApplicationId,
    AvpCode,
    CommandCode,
    ResultCode,
)
from diameter_apps.dictionary import Dictionary, default_dictionary
from diameter_apps.duplicates import DuplicateCache, DuplicateKey
from diameter_apps.errors import (
    DiameterError,
    FramingError,
    TooBusy,
)
from diameter_apps.events import (
    AnswerReceived,
    DuplicateAnswered,
    ErrorAnswered,
    Event,
    PeerClosed,
    PeerOpened,
    ProtocolDeviation,
    RequestReceived,
    RequestTimedOut,
)
from diameter_apps.framer import Framer
from diameter_apps.peer_states import Action, PeerInput, PeerState, transition
from diameter_apps.router import Router, check_destination
from diameter_apps.validation import RequestChecker

__all__ = ["PeerConnection", "PeerNotOpen", "PeerSettings"]


class PeerNotOpen(RuntimeError):
    """``send_request`` on a connection that is not (or no longer) open."""


class _Pending(msgspec.Struct):
    deadline: float
    command_code: int


# The members the per-message path compares with, as module constants: reading a member off
# its Enum class costs ~60 ns, a global ~5 ns.
_CLOSED = PeerState.CLOSED
_DRAINING = PeerState.DRAINING
_APP_REQUEST = PeerInput.APP_REQUEST
_APP_ANSWER = PeerInput.APP_ANSWER
_CAPABILITIES_EXCHANGE = int(CommandCode.CAPABILITIES_EXCHANGE)

_BASE_COMMAND_INPUTS = {
    (int(CommandCode.CAPABILITIES_EXCHANGE), False): PeerInput.CEA,
    (int(CommandCode.DEVICE_WATCHDOG), True): PeerInput.DWR,
    (int(CommandCode.DEVICE_WATCHDOG), False): PeerInput.DWA,
    (int(CommandCode.DISCONNECT_PEER), True): PeerInput.DPR,
    (int(CommandCode.DISCONNECT_PEER), False): PeerInput.DPA,
}


class PeerConnection:
    """The sans-IO state of one accepted Diameter connection (see the module docstring)."""

    def __init__(
        self,
        settings: PeerSettings,
        router: Router,
        duplicates: DuplicateCache,
        now: float,
        *,
        dictionary: Dictionary | None = None,
        checker: RequestChecker | None = None,
        rng: random.Random | None = None,
        output_ready: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self._router = router
        self._duplicates = duplicates
        self._dictionary = dictionary if dictionary is not None else default_dictionary()
        self._rng = rng if rng is not None else random.Random()
        self._output_ready = output_ready
        self._framer = Framer(settings.limits)
        self._checker = (
            checker
            if checker is not None
            else RequestChecker(self._dictionary, settings.profile, settings.limits)
        )
        self._state = PeerState.WAIT_CER
        self._out: list[bytes] = []
        self._events: list[Event] = []
        self._our_host = settings.origin_host.lower()
        self._our_realm = settings.origin_realm.lower()
        # identifiers we allocate (RFC 6733 §3: E2E high 12 bits from the clock)
        self._next_hop_by_hop = self._rng.getrandbits(32)
        self._next_end_to_end = ((int(now) & 0xFFF) << 20) | self._rng.getrandbits(20)
        # timers (absolute times, None when disarmed)
        self._cer_deadline: float | None = now + settings.cer_timeout_s
        self._watchdog_at: float | None = None
        self._drain_deadline: float | None = None
        self._dpa_deadline: float | None = None
        self._pending: dict[int, _Pending] = {}
        # watchdog (RFC 3539): an outstanding DWR, and whether Tw already passed without traffic
        self._dwr_hop_by_hop: int | None = None
        self._watchdog_suspect = False
        self._tw_s = settings.watchdog_interval_s
        self._inflight: dict[tuple[int, int], DuplicateKey] = {}
        self._cer_verdict: DiameterError | Capabilities | None = None
        self.peer_origin_host: str | None = None
        self.peer_origin_realm: str | None = None
        self._actions: dict[Action, Callable[[Message | None, float], None]] = {
            Action.SEND_CEA: self._send_cea,
            Action.REJECT_CER: self._reject_cer,
            Action.SEND_DWA: self._send_dwa,
            Action.WATCHDOG_ANSWERED: self._watchdog_answered,
            Action.SEND_DPA: self._send_dpa,
            Action.DISPATCH_REQUEST: self._dispatch_request,
            Action.REFUSE_REQUEST_BUSY: self._refuse_request_busy,
            Action.MATCH_ANSWER: self._match_answer,
            Action.SEND_DWR: self._send_dwr,
            Action.MARK_SUSPECT: self._mark_suspect,
            Action.START_DRAIN: self._start_drain,
            Action.SEND_DPR: self._send_dpr,
            Action.IGNORE_UNEXPECTED: self._ignore_unexpected,
            Action.CLOSE_UNEXPECTED: self._close_unexpected,
            Action.CLOSE_CER_TIMEOUT: self._closer("no CER within cer_timeout_s"),
            Action.CLOSE_WATCHDOG: self._closer("no answer to DWR within 2 x Tw"),
            Action.CLOSE_DPA_RECEIVED: self._closer("DPA received"),
            Action.CLOSE_DPA_TIMEOUT: self._closer("no DPA within dpa_timeout_s"),
            Action.CLOSE_SHUTDOWN: self._closer("shut down before CER"),
            Action.CLOSE_LOST: self._closer("connection lost"),
            Action.CLOSE_MALFORMED: self._closer("malformed byte stream"),
            Action.NOTHING: self._nothing,
        }

    # ===== public API =======================================================================

    @property
    def state(self) -> PeerState:
        return self._state

    @property
    def should_close(self) -> bool:
        """True once the connection is over: flush ``data_to_send()`` and close."""
        return self._state is _CLOSED

    @property
    def inflight_requests(self) -> int:
        return len(self._inflight)

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        if self._state is not _CLOSED:
            try:
                frames = self._framer.feed(data)
            except FramingError as error:
                self._events.append(ProtocolDeviation(f"closing: {error.error_message}"))
                self._run(PeerInput.MALFORMED_STREAM, None, now)
                frames = []
            for frame in frames:
                if self._state is _CLOSED:
                    break
                self._on_frame(frame, now)
        return self._take_events()

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def next_timer(self) -> float | None:
        if self._state is _CLOSED:
            return None
        times = [
            t
            for t in (
                self._cer_deadline,
                self._watchdog_at,
                self._drain_deadline,
                self._dpa_deadline,
            )
            if t is not None
        ]
        if self._pending:  # no generator built per call for the usual empty map
            times.extend([p.deadline for p in self._pending.values()])
        return min(times) if times else None

    def handle_timer(self, now: float) -> list[Event]:
        if self._cer_deadline is not None and now >= self._cer_deadline:
            self._cer_deadline = None
            self._run(PeerInput.CER_TIMER, None, now)
        if self._watchdog_at is not None and now >= self._watchdog_at:
            self._watchdog_at = None
            if self._dwr_hop_by_hop is None:
                self._run(PeerInput.WATCHDOG_DUE, None, now)
            elif not self._watchdog_suspect:
                self._run(PeerInput.WATCHDOG_SUSPECT, None, now)
            else:
                self._run(PeerInput.WATCHDOG_EXPIRED, None, now)
        if self._drain_deadline is not None and now >= self._drain_deadline:
            self._drain_deadline = None
            self._run(PeerInput.DRAIN_TIMER, None, now)
        if self._dpa_deadline is not None and now >= self._dpa_deadline:
            self._dpa_deadline = None
            self._run(PeerInput.DPA_TIMER, None, now)
        for hop_by_hop, pending in list(self._pending.items()):
            if pending.deadline <= now:
                del self._pending[hop_by_hop]
                self._events.append(RequestTimedOut(hop_by_hop, pending.command_code))
        return self._take_events()

    def send_answer(
        self,
        request: RequestReceived | Message,
        answer: Message,
        now: float,
        *,
        remember: bool = True,
    ) -> None:
        """Queue the application's answer to ``request`` and release waiting duplicates.

        The answer's identifiers and flags are forced to echo the request (B6). Call it even
        after the connection closed: the answer is then only stored for duplicates.
        ``remember=False`` for a transient answer that does not carry the outcome (3004 while
        the ledger is unreachable): a later retransmission then reaches the application again.
        """
        message = request.message if isinstance(request, RequestReceived) else request
        key = self._inflight.pop((message.hop_by_hop, message.end_to_end), None)
        if key is None:
            raise ValueError(
                f"no request in flight with hop-by-hop {message.hop_by_hop} "
                f"and end-to-end {message.end_to_end}"
            )
        answer.hop_by_hop = message.hop_by_hop
        answer.end_to_end = message.end_to_end
        answer.command_code = message.command_code
        answer.application_id = message.application_id
        answer.flags = (answer.flags & ~(FLAG_REQUEST | FLAG_RETRANSMIT | FLAG_PROXIABLE)) | (
            message.flags & FLAG_PROXIABLE
        )
        encoded = answer.encode()
        if self._state is not _CLOSED:
            self._out.append(encoded)
        if remember:
            self._duplicates.complete(key, encoded, now)
        else:
            self._duplicates.release(key, encoded, now)
        if self._state is _DRAINING and not self._inflight:
            self._run(PeerInput.INFLIGHT_DRAINED, None, now)

    def send_request(self, message: Message, now: float, timeout_s: float) -> int:
        """Send a server-initiated request (RAR, ASR); returns its Hop-by-Hop id.

        Its answer comes back as AnswerReceived, or RequestTimedOut after ``timeout_s``.
        """
        if self._state not in (PeerState.R_OPEN, PeerState.DRAINING):
            raise PeerNotOpen(f"cannot send a request in state {self._state.value}")
        hop_by_hop = self._queue_request(message)
        self._pending[hop_by_hop] = _Pending(now + timeout_s, message.command_code)
        return hop_by_hop

    def begin_shutdown(self, now: float) -> list[Event]:
        """Stop taking requests, let in-flight ones finish, then DPR (B4)."""
        self._run(PeerInput.SHUTDOWN, None, now)
        return self._take_events()

    def connection_lost(self, now: float) -> list[Event]:
        self._run(PeerInput.CONNECTION_LOST, None, now)
        return self._take_events()

    # ===== the machine ======================================================================

    def _take_events(self) -> list[Event]:
        events, self._events = self._events, []
        return events

    def _run(self, peer_input: PeerInput, message: Message | None, now: float) -> None:
        step = transition(self._state, peer_input)
        self._state = step.next_state
        self._actions[step.action](message, now)

    def _on_frame(self, frame: bytes, now: float) -> None:
        if self._watchdog_at is not None:
            # RFC 3539: any traffic proves the peer alive and restarts Tw (the jitter drawn
            # when the timer was last armed is reused: no random draw per message).
            self._watchdog_suspect = False
            self._watchdog_at = now + self._tw_s
        is_request = bool(frame[4] & FLAG_REQUEST)
        try:
            if is_request:
                message, deviations = self._checker.decode(frame)
                if deviations:
                    self._deviations(deviations)
            else:
                message = decode_message(frame, self.settings.limits)
        except DiameterError as error:
            self._on_undecodable(error, now)
            return
        command_code = message.command_code
        if command_code == _CAPABILITIES_EXCHANGE and is_request:
            self._cer_verdict = self._evaluate_cer(message)
            accepted = isinstance(self._cer_verdict, Capabilities)
            peer_input = PeerInput.CER_ACCEPTABLE if accepted else PeerInput.CER_REJECTED
        else:
            peer_input = _BASE_COMMAND_INPUTS.get((command_code, is_request)) or (
                _APP_REQUEST if is_request else _APP_ANSWER
            )
        self._run(peer_input, message, now)

    def _on_undecodable(self, error: DiameterError, now: float) -> None:
        header = error.request
        if not isinstance(header, Message) or not header.is_request:
            self._events.append(ProtocolDeviation(f"undecodable answer dropped: {error}"))
            return
        if self._state is PeerState.WAIT_CER:
            if header.command_code == CommandCode.CAPABILITIES_EXCHANGE:
                self._cer_verdict = error
                self._run(PeerInput.CER_REJECTED, header, now)
            else:
                self._run(PeerInput.APP_REQUEST, header, now)
            return
        self._answer_error(header, error)

    # ----- capabilities exchange (B2) -------------------------------------------------------

    def _evaluate_cer(self, cer: Message) -> DiameterError | Capabilities:
        return evaluate_cer(cer, self.settings, self._router.application_ids)

    def _send_cea(self, cer: Message | None, now: float) -> None:
        assert cer is not None and isinstance(self._cer_verdict, Capabilities)
        capabilities = self._cer_verdict
        self._send(
            self._answer(cer, ResultCode.SUCCESS, accepting_avps(self.settings, capabilities))
        )
        self.peer_origin_host = cer.origin_host
        realm = cer.find(AvpCode.ORIGIN_REALM)
        self.peer_origin_realm = None if realm is None else realm.as_str()
        self._cer_deadline = None
        if self._watchdog_at is None:
            self._watchdog_at = now + self._watchdog_interval()
        self._events.append(
            PeerOpened(
                self.peer_origin_host or "",
                self.peer_origin_realm or "",
                capabilities.application_ids,
            )
        )

    def _reject_cer(self, cer: Message | None, now: float) -> None:
        assert cer is not None and isinstance(self._cer_verdict, DiameterError)
        error = self._cer_verdict
        self._send(rejecting_cea(cer, self.settings, error))
        self._events.append(
            ErrorAnswered(cer.command_code, int(error.result_code), error.error_message)
        )
        self._close(f"CER rejected with {int(error.result_code)}: {error.error_message}")

    # ----- watchdog (B3) --------------------------------------------------------------------

    def _watchdog_interval(self) -> float:
        """Tw with fresh jitter (RFC 3539 §3.4.1), remembered for re-arming on traffic."""
        jitter = self.settings.watchdog_jitter_s
        self._tw_s = self.settings.watchdog_interval_s + self._rng.uniform(-jitter, jitter)
        return self._tw_s

    def _send_dwa(self, dwr: Message | None, now: float) -> None:
        assert dwr is not None
        origin_state = Avp.u32(AvpCode.ORIGIN_STATE_ID, self.settings.origin_state_id)
        self._send(self._answer(dwr, ResultCode.SUCCESS, [origin_state]))

    def _send_dwr(self, _: Message | None, now: float) -> None:
        dwr = Message.request(
            CommandCode.DEVICE_WATCHDOG,
            ApplicationId.DIAMETER_COMMON_MESSAGES,
            [*self._origin_avps(), Avp.u32(AvpCode.ORIGIN_STATE_ID, self.settings.origin_state_id)],
            proxiable=False,
        )
        self._dwr_hop_by_hop = self._queue_request(dwr)
        self._watchdog_at = now + self._watchdog_interval()

    def _mark_suspect(self, _: Message | None, now: float) -> None:
        self._watchdog_suspect = True
        self._watchdog_at = now + self._watchdog_interval()
        self._events.append(ProtocolDeviation("no answer to our DWR within Tw: peer suspect"))

    def _watchdog_answered(self, dwa: Message | None, now: float) -> None:
        assert dwa is not None
        if dwa.hop_by_hop != self._dwr_hop_by_hop:
            self._events.append(ProtocolDeviation("DWA that answers no DWR of ours ignored"))
            return
        self._dwr_hop_by_hop = None
        self._watchdog_suspect = False

    # ----- disconnect (B4) ------------------------------------------------------------------

    def _send_dpa(self, dpr: Message | None, now: float) -> None:
        assert dpr is not None
        self._send(self._answer(dpr, ResultCode.SUCCESS, []))
        self._close("peer sent DPR")

    def _start_drain(self, _: Message | None, now: float) -> None:
        self._drain_deadline = now + self.settings.drain_timeout_s
        if not self._inflight:
            self._run(PeerInput.INFLIGHT_DRAINED, None, now)

    def _send_dpr(self, _: Message | None, now: float) -> None:
        self._drain_deadline = None
        dpr = Message.request(
            CommandCode.DISCONNECT_PEER,
            ApplicationId.DIAMETER_COMMON_MESSAGES,
            [
                *self._origin_avps(),
                Avp.i32(AvpCode.DISCONNECT_CAUSE, int(self.settings.disconnect_cause)),
            ],
            proxiable=False,
        )
        self._queue_request(dpr)
        self._dpa_deadline = now + self.settings.dpa_timeout_s

    # ----- application traffic --------------------------------------------------------------

    def _dispatch_request(self, request: Message | None, now: float) -> None:
        assert request is not None
        settings = self.settings
        try:
            check_destination(request, self._our_host, self._our_realm)
            self._router.check(request.application_id, request.command_code)
            if len(self._inflight) >= settings.inflight_requests_max:
                raise TooBusy(f"more than {settings.inflight_requests_max} requests in flight")
            origin = request.origin_host or ""
        except DiameterError as error:
            self._answer_error(request, error)
            return
        key = (origin.lower(), request.end_to_end)
        duplicates = self._duplicates
        original, cached = duplicates.begin(key, now)
        if cached is not None:
            self._out.append(replace_hop_by_hop(cached, request.hop_by_hop))
            self._events.append(DuplicateAnswered(request.command_code, request.end_to_end))
            return
        if not original:
            duplicates.wait(key, self._duplicate_waiter(request))
            return
        self._inflight[(request.hop_by_hop, request.end_to_end)] = key
        self._events.append(
            RequestReceived(
                request,
                request.application_id,
                request.command_code,
                request.hop_by_hop,
                request.end_to_end,
                origin,
                now,
            )
        )

    def _duplicate_waiter(self, request: Message) -> Callable[[bytes], None]:
        hop_by_hop = request.hop_by_hop
        command_code = request.command_code
        end_to_end = request.end_to_end

        def deliver(answer: bytes) -> None:
            if self._state is PeerState.CLOSED:
                return
            self._out.append(replace_hop_by_hop(answer, hop_by_hop))
            self._events.append(DuplicateAnswered(command_code, end_to_end))
            if self._output_ready is not None:
                self._output_ready()

        return deliver

    def _refuse_request_busy(self, request: Message | None, now: float) -> None:
        assert request is not None
        self._answer_error(request, TooBusy("this server is shutting down", request=request))

    def _match_answer(self, answer: Message | None, now: float) -> None:
        assert answer is not None
        pending = self._pending.pop(answer.hop_by_hop, None)
        if pending is None:
            self._events.append(
                ProtocolDeviation(f"answer with unknown hop-by-hop {answer.hop_by_hop} dropped")
            )
            return
        self._events.append(AnswerReceived(answer, answer.hop_by_hop, pending.command_code))

    # ----- unexpected input and closing -----------------------------------------------------

    def _ignore_unexpected(self, message: Message | None, now: float) -> None:
        what = "message" if message is None else f"command {message.command_code}"
        self._events.append(ProtocolDeviation(f"unexpected {what} in {self._state.value} ignored"))

    def _close_unexpected(self, message: Message | None, now: float) -> None:
        what = "message" if message is None else f"command {message.command_code}"
        self._close(f"{what} received before CER")

    def _closer(self, reason: str) -> Callable[[Message | None, float], None]:
        def close(_: Message | None, now: float) -> None:
            self._close(reason)

        return close

    def _nothing(self, _: Message | None, now: float) -> None:
        return

    def _close(self, reason: str) -> None:
        self._cer_deadline = self._watchdog_at = self._drain_deadline = self._dpa_deadline = None
        for hop_by_hop, pending in self._pending.items():
            self._events.append(RequestTimedOut(hop_by_hop, pending.command_code))
        self._pending.clear()
        self._events.append(PeerClosed(reason))

    # ----- helpers --------------------------------------------------------------------------

    def _deviations(self, descriptions: list[str]) -> None:
        for description in descriptions:
            self._events.append(ProtocolDeviation(description))

    def _origin_avps(self) -> list[Avp]:
        return [
            Avp.utf8(AvpCode.ORIGIN_HOST, self.settings.origin_host),
            Avp.utf8(AvpCode.ORIGIN_REALM, self.settings.origin_realm),
        ]

    def _answer(self, request: Message, result_code: int, avps: list[Avp]) -> Message:
        return answer_to(
            request,
            origin_host=self.settings.origin_host,
            origin_realm=self.settings.origin_realm,
            result_code=result_code,
            avps=avps,
        )

    def _answer_error(self, request: Message, error: DiameterError) -> None:
        answer = answer_for_error(
            request,
            error,
            origin_host=self.settings.origin_host,
            origin_realm=self.settings.origin_realm,
        )
        self._send(answer)
        self._events.append(
            ErrorAnswered(request.command_code, int(error.result_code), error.error_message)
        )

    def _send(self, message: Message) -> None:
        self._out.append(message.encode())

    def _queue_request(self, message: Message) -> int:
        hop_by_hop = self._next_hop_by_hop
        self._next_hop_by_hop = (hop_by_hop + 1) & 0xFFFFFFFF
        message.hop_by_hop = hop_by_hop
        if message.end_to_end == 0:
            message.end_to_end = self._next_end_to_end
            self._next_end_to_end = (self._next_end_to_end + 1) & 0xFFFFFFFF
        message.flags |= FLAG_REQUEST
        self._out.append(message.encode())
        return hop_by_hop
