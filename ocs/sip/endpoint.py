"""The whole redirect server of one transport, sans-IO: bytes and ``now`` in, actions out.

It joins the parser, the server transactions and the redirect decisions. The asyncio adapter
(``ocs.sip.transport``) feeds it datagrams / frames, performs the actions it returns (send
bytes, call the authorizer, check health) and reports results back with ``authorized()`` /
``health_checked()``; it re-arms one timer from ``next_timer()``.

Every request gets an answer or a deliberate drop: parse errors that still have a Via are
answered statelessly, refusals and decisions go through the transaction layer so that
retransmissions are answered from the stored response and never reach the authorizer twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import msgspec

from ocs.sip.authorizer import CallAuthDecision, CallAuthRequest
from ocs.sip.errors import SipParseError
from ocs.sip.head import RequestHead, Via
from ocs.sip.message import (
    ParseLimits,
    SipRequest,
    SipResponse,
    build_response,
    parse_message,
    response_destination,
    salvage_head,
)
from ocs.sip.metrics import (
    DROP_MALFORMED,
    DROP_RESPONSE,
    DROP_SOURCE,
    DROP_STRAY_ACK,
    DROP_UNFRAMEABLE,
    UNKNOWN_TENANT,
    SipMetrics,
)
from ocs.sip.redirect import (
    Answer,
    RedirectPolicy,
    ResultCode,
    SourceFilter,
    authorizer_failed,
    call_auth_request,
    decision_answer,
    malformed,
    method_not_allowed,
    no_such_transaction,
    options_answer,
    overloaded,
    source_not_allowed,
)
from ocs.sip.transaction import (
    Absorbed,
    AckTimeout,
    Destination,
    NewTransaction,
    Retransmit,
    ServerTransactions,
    StrayAck,
    TimerConfig,
    TransactionKey,
    transaction_key,
)

# Methods counted under their own name; anything else is "other" (bounded metric labels).
_COUNTED_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "OPTIONS", "BYE", "REGISTER", "SUBSCRIBE", "NOTIFY", "INFO"}
)


class Send(msgspec.Struct, frozen=True):
    """Write ``data``: to a (host, port) over UDP, or on a connection handle over TCP."""

    data: bytes
    destination: Destination


class Authorize(msgspec.Struct, frozen=True):
    """Call the authorizer, then report with ``authorized(ticket, …)`` or
    ``authorization_failed(ticket, …)``."""

    ticket: TransactionKey
    request: CallAuthRequest


class CheckHealth(msgspec.Struct, frozen=True):
    """Ask the authorizer whether the ledger is up, then report with ``health_checked``."""

    ticket: TransactionKey


Action = Send | Authorize | CheckHealth


@dataclass(slots=True)
class _Pending:
    """A request waiting for the authorizer (INVITE) or the health check (OPTIONS)."""

    head: RequestHead
    source: tuple[str, int]
    received_at: float


def _random_tag() -> str:
    return secrets.token_hex(6)


class SipEndpoint:
    def __init__(
        self,
        *,
        transport: str,
        limits: ParseLimits,
        policy: RedirectPolicy,
        metrics: SipMetrics,
        timers: TimerConfig | None = None,
        inflight_max: int = 1024,
        transactions_max: int = 100_000,
        new_tag: Callable[[], str] = _random_tag,
    ) -> None:
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, got {transport!r}")
        self.transport = transport
        self._limits = limits
        self._policy = policy
        self._sources = SourceFilter(policy.allowed_sources)
        self._metrics = metrics
        self._transactions = ServerTransactions(
            reliable=transport != "udp",
            timers=timers or TimerConfig(),
            transactions_max=transactions_max,
        )
        self._inflight_max = inflight_max
        self._new_tag = new_tag
        self._pending: dict[TransactionKey, _Pending] = {}

    @property
    def inflight(self) -> int:
        return len(self._pending)

    @property
    def transactions(self) -> int:
        return len(self._transactions)

    # -- input -------------------------------------------------------------------------------

    def receive(
        self,
        data: bytes,
        source: tuple[str, int],
        now: float,
        connection: Hashable | None = None,
    ) -> list[Action]:
        """One datagram (UDP) or one framed message (TCP, with its connection handle)."""
        try:
            message = parse_message(data, self._limits)
        except SipParseError as error:
            if error.status is None or error.head is None:
                self._metrics.dropped[DROP_MALFORMED] += 1
                return []
            answer = malformed(error.status, error.reason)
            return [self._stateless(error.head, answer, source, connection)]
        if isinstance(message, SipResponse):
            self._metrics.dropped[DROP_RESPONSE] += 1
            return []
        return self._request(message, source, now, connection)

    def refuse_stream(
        self,
        data: bytes,
        status: int | None,
        reason: str,
        source: tuple[str, int],
        connection: Hashable,
    ) -> list[Action]:
        """A TCP stream the framer gave up on: answer it if it can be addressed; the adapter
        closes the connection afterwards either way."""
        self._metrics.dropped[DROP_UNFRAMEABLE] += 1
        head = salvage_head(data, self._limits) if status is not None else None
        if status is None or head is None:
            return []
        return [self._stateless(head, malformed(status, reason), source, connection)]

    def _request(
        self,
        request: SipRequest,
        source: tuple[str, int],
        now: float,
        connection: Hashable | None,
    ) -> list[Action]:
        method = request.method
        metrics = self._metrics
        metrics.requests_by_method[method if method in _COUNTED_METHODS else "other"] += 1
        if not self._sources.allows(source[0]):
            if method == "ACK" or not self._policy.reject_unknown_sources:
                metrics.dropped[DROP_SOURCE] += 1
                return []
            return [self._stateless(request.head, source_not_allowed(), source, connection)]
        key = transaction_key(request)
        if method != "ACK" and self._transactions.full and self._transactions.get(key) is None:
            metrics.shed += 1
            answer = overloaded(self._policy.retry_after_s)
            return [self._stateless(request.head, answer, source, connection)]
        destination = self._destination(request.top_via, source, connection)
        matched = self._transactions.match(request, destination, now)
        if isinstance(matched, StrayAck):
            metrics.dropped[DROP_STRAY_ACK] += 1
            return []
        if isinstance(matched, Absorbed):
            return self._absorbed(request, key, matched, source)
        assert isinstance(matched, NewTransaction)
        return self._new_transaction(request, key, source, now)

    def _absorbed(
        self,
        request: SipRequest,
        key: TransactionKey,
        matched: Absorbed,
        source: tuple[str, int],
    ) -> list[Action]:
        if matched.was_ack:
            return []
        self._metrics.retransmissions_absorbed += 1
        if matched.resend is not None and matched.destination is not None:
            return [Send(matched.resend, matched.destination)]
        if request.method == "INVITE" and key in self._pending:
            # Still asking the authorizer: a 100 Trying stops the client's INVITE
            # retransmissions (Timer A) without promising anything (RFC 3261 §17.2.1).
            trying = build_response(request.head, 100, "Trying", source=source).to_bytes()
            self._transactions.provisional(key, trying)
            transaction = self._transactions.get(key)
            if transaction is not None:
                self._metrics.responses_by_status[100] += 1
                return [Send(trying, transaction.destination)]
        return []

    def _new_transaction(
        self,
        request: SipRequest,
        key: TransactionKey,
        source: tuple[str, int],
        now: float,
    ) -> list[Action]:
        method = request.method
        if method == "INVITE" and request.to_tag:
            # A re-INVITE: a redirect server keeps no dialogs (RFC 3261 §12.2.2), and
            # charging is decided once, on the initial INVITE.
            return self._complete(key, request.head, source, no_such_transaction(), now, now)
        if method in ("INVITE", "OPTIONS"):
            if len(self._pending) >= self._inflight_max:
                self._metrics.shed += 1
                answer = overloaded(self._policy.retry_after_s)
                return self._complete(key, request.head, source, answer, now, now)
            if method == "OPTIONS":
                self._pending[key] = _Pending(request.head, source, now)
                return [CheckHealth(key)]
            ask = call_auth_request(
                request, source, self.transport, self._policy.international_prefix
            )
            if isinstance(ask, Answer):
                return self._complete(key, request.head, source, ask, now, now)
            self._pending[key] = _Pending(request.head, source, now)
            self._metrics.authorizer_calls += 1
            return [Authorize(key, ask)]
        if method == "CANCEL":
            # A redirect server answers fast; the INVITE still gets its own final answer, so
            # a reservation made meanwhile is reported to the proxy, never silently lost.
            invite_key = (*key[:-1], "INVITE")
            if self._transactions.get(invite_key) is not None:
                answer = Answer(200, "OK", ResultCode.SUCCESS)
            else:
                answer = no_such_transaction()
            return self._complete(key, request.head, source, answer, now, now)
        return self._complete(key, request.head, source, method_not_allowed(), now, now)

    # -- results of the actions ----------------------------------------------------------------

    def authorized(
        self, ticket: TransactionKey, decision: CallAuthDecision, now: float
    ) -> list[Action]:
        pending = self._pending.pop(ticket, None)
        if pending is None:
            return []
        answer = decision_answer(decision, pending.head.uri, self._policy.retry_after_s)
        if answer.status == 500:
            self._metrics.authorizer_failures += 1
        elif answer.status == 302:
            self._metrics.reservations_granted += 1
            self._metrics.active_reservations += 1
        tenant = decision.tenant or UNKNOWN_TENANT
        return self._complete(
            ticket, pending.head, pending.source, answer, now, pending.received_at, tenant
        )

    def authorization_failed(self, ticket: TransactionKey, now: float) -> list[Action]:
        """The authorizer raised or timed out: 503 with Retry-After."""
        pending = self._pending.pop(ticket, None)
        if pending is None:
            return []
        self._metrics.authorizer_failures += 1
        answer = authorizer_failed(self._policy.retry_after_s)
        return self._complete(
            ticket, pending.head, pending.source, answer, now, pending.received_at
        )

    def health_checked(self, ticket: TransactionKey, healthy: bool, now: float) -> list[Action]:
        pending = self._pending.pop(ticket, None)
        if pending is None:
            return []
        answer = options_answer(healthy, self._policy.retry_after_s)
        return self._complete(
            ticket, pending.head, pending.source, answer, now, pending.received_at
        )

    # -- time ----------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        return self._transactions.next_timer()

    def handle_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for output in self._transactions.handle_timer(now):
            if isinstance(output, Retransmit):
                self._metrics.responses_retransmitted += 1
                actions.append(Send(output.data, output.destination))
            elif isinstance(output, AckTimeout):
                self._metrics.ack_timeouts += 1
        return actions

    # -- answers -------------------------------------------------------------------------------

    def _destination(
        self, via: Via, source: tuple[str, int], connection: Hashable | None
    ) -> Destination:
        if connection is not None:
            return connection
        return response_destination(via, source)

    def _complete(
        self,
        key: TransactionKey,
        head: RequestHead,
        source: tuple[str, int],
        answer: Answer,
        now: float,
        received_at: float,
        tenant: str = UNKNOWN_TENANT,
    ) -> list[Action]:
        response = build_response(
            head,
            answer.status,
            answer.reason,
            source=source,
            to_tag=self._new_tag(),
            extra_headers=answer.headers(),
        )
        sent = self._transactions.complete(key, response.to_bytes(), now)
        if sent is None:
            return []
        self._count(head.method, answer.status, tenant, now - received_at)
        data, destination = sent
        return [Send(data, destination)]

    def _stateless(
        self,
        head: RequestHead,
        answer: Answer,
        source: tuple[str, int],
        connection: Hashable | None,
    ) -> Send:
        response = build_response(
            head,
            answer.status,
            answer.reason,
            source=source,
            to_tag=self._new_tag(),
            extra_headers=answer.headers(),
        )
        self._count(head.method, answer.status, UNKNOWN_TENANT, None)
        destination = self._destination(head.vias[0], source, connection)
        return Send(response.to_bytes(), destination)

    def _count(self, method: str, status: int, tenant: str, latency_s: float | None) -> None:
        self._metrics.responses_by_status[status] += 1
        if method == "INVITE":
            self._metrics.invites[(tenant, status)] += 1
            if latency_s is not None:
                self._metrics.observe_latency(latency_s)
