"""RFC 3261 §17.2 server transactions, sans-IO: requests and ``now`` in, decisions out.

What it buys a redirect server: a retransmitted request is recognised and answered from the
stored response instead of reaching the redirect logic again (so the authorizer is asked once
per call), final INVITE responses are retransmitted over UDP until the ACK arrives (Timer G,
T1 doubling up to T2; given up at Timer H), and finished transactions linger just long enough
to absorb late retransmissions (Timer I after the ACK, Timer J for non-INVITE).

Time is a parameter: ``next_timer()`` says when ``handle_timer(now)`` must be called.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Hashable
from dataclasses import dataclass, field

import msgspec

from ocs.sip.message import BRANCH_MAGIC_COOKIE, SipRequest

TransactionKey = tuple[str, ...]
# Where responses go: (host, port) for UDP, a connection handle for TCP; opaque here.
Destination = Hashable


class TimerConfig(msgspec.Struct, frozen=True):
    """RFC 3261 Table 4 values; ``t1_s`` is the RTT estimate every other timer scales with."""

    t1_s: float = 0.5
    t2_s: float = 4.0
    t4_s: float = 5.0

    @property
    def timer_h_s(self) -> float:
        return 64 * self.t1_s

    @property
    def timer_j_s(self) -> float:
        return 64 * self.t1_s


class State(enum.Enum):
    PROCEEDING = "proceeding"  # INVITE awaiting its final response (non-INVITE: "trying")
    COMPLETED = "completed"  # final response sent, retransmissions answered from it
    CONFIRMED = "confirmed"  # INVITE only: ACK received, absorbing stray ACKs until Timer I


class TimerKind(enum.Enum):
    G = "G"  # retransmit the final INVITE response (unreliable transports)
    H = "H"  # give up waiting for the ACK
    I = "I"  # noqa: E741 (RFC name) leave Confirmed
    J = "J"  # leave Completed (non-INVITE)


@dataclass(slots=True)
class ServerTransaction:
    key: TransactionKey
    method: str
    destination: Destination
    state: State = State.PROCEEDING
    response: bytes | None = None
    provisional: bytes | None = None
    retransmit_interval_s: float = 0.0
    # The live sequence number of each armed timer; a heap entry with another number is stale.
    timers: dict[TimerKind, int] = field(default_factory=dict)

    @property
    def is_invite(self) -> bool:
        return self.method == "INVITE"


class NewTransaction(msgspec.Struct, frozen=True):
    """A request seen for the first time: the TU (redirect logic) must answer it."""

    key: TransactionKey


class Absorbed(msgspec.Struct, frozen=True):
    """A retransmission or an ACK handled inside the layer; ``resend`` is what to send back
    (the stored response, the last provisional one), or None for nothing."""

    resend: bytes | None
    destination: Destination | None
    was_ack: bool = False


class StrayAck(msgspec.Struct, frozen=True):
    """An ACK matching no transaction (e.g. for a 2xx, or after Timer H): dropped silently."""


Matched = NewTransaction | Absorbed | StrayAck


class Retransmit(msgspec.Struct, frozen=True):
    data: bytes
    destination: Destination


class AckTimeout(msgspec.Struct, frozen=True):
    """Timer H fired: the client never acknowledged the final response."""

    key: TransactionKey


TimerOutput = Retransmit | AckTimeout


def transaction_key(request: SipRequest) -> TransactionKey:
    """RFC 3261 §17.2.3: branch + sent-by + method (ACK belongs to its INVITE); requests
    from RFC 2543 peers (no magic cookie) match on Request-URI, From tag, Call-ID, CSeq
    number and the top Via instead."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if branch and branch.startswith(BRANCH_MAGIC_COOKIE):
        return ("3261", branch, via.sent_by, method)
    return (
        "2543",
        request.uri,
        request.from_tag or "",
        request.call_id,
        str(request.cseq),
        via.to_text(),
        method,
    )


class ServerTransactions:
    """All server transactions of one transport (UDP, or TCP across its connections)."""

    def __init__(self, *, reliable: bool, timers: TimerConfig, transactions_max: int) -> None:
        self._reliable = reliable
        self._timers = timers
        self._transactions_max = transactions_max
        self._by_key: dict[TransactionKey, ServerTransaction] = {}
        self._heap: list[tuple[float, int, TransactionKey, TimerKind]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._by_key)

    @property
    def full(self) -> bool:
        return len(self._by_key) >= self._transactions_max

    def get(self, key: TransactionKey) -> ServerTransaction | None:
        return self._by_key.get(key)

    def match(self, request: SipRequest, destination: Destination, now: float) -> Matched:
        """Route an incoming request: new work for the TU, or handled here."""
        key = transaction_key(request)
        transaction = self._by_key.get(key)
        if request.method == "ACK":
            if transaction is None or not transaction.is_invite:
                return StrayAck()
            if transaction.state is State.COMPLETED:
                transaction.state = State.CONFIRMED
                self._cancel(transaction, TimerKind.G)
                self._cancel(transaction, TimerKind.H)
                self._arm_or_finish(transaction, TimerKind.I, self._timers.t4_s, now)
            return Absorbed(None, None, was_ack=True)
        if transaction is None:
            self._by_key[key] = ServerTransaction(key, request.method, destination)
            return NewTransaction(key)
        if transaction.state is State.PROCEEDING:
            return Absorbed(transaction.provisional, transaction.destination)
        if transaction.state is State.COMPLETED:
            return Absorbed(transaction.response, transaction.destination)
        return Absorbed(None, None)  # CONFIRMED: the ACK already came; nothing to resend

    def provisional(self, key: TransactionKey, data: bytes) -> None:
        """Remember a 1xx sent while the TU works, to answer retransmissions with it."""
        transaction = self._by_key.get(key)
        if transaction is not None and transaction.state is State.PROCEEDING:
            transaction.provisional = data

    def complete(
        self, key: TransactionKey, data: bytes, now: float
    ) -> tuple[bytes, Destination] | None:
        """Store the TU's final response and start the Completed-state timers; returns what to
        send, or None when the transaction is gone (cannot happen unless misused)."""
        transaction = self._by_key.get(key)
        if transaction is None or transaction.state is not State.PROCEEDING:
            return None
        transaction.state = State.COMPLETED
        transaction.response = data
        transaction.provisional = None
        if transaction.is_invite:
            if not self._reliable:
                transaction.retransmit_interval_s = self._timers.t1_s
                self._arm(transaction, TimerKind.G, now + self._timers.t1_s)
            self._arm(transaction, TimerKind.H, now + self._timers.timer_h_s)
        else:
            self._arm_or_finish(transaction, TimerKind.J, self._timers.timer_j_s, now)
        return data, transaction.destination

    def abandon(self, key: TransactionKey) -> None:
        """Forget a transaction whose request turned out not to deserve one."""
        self._by_key.pop(key, None)

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap:
            _, sequence, key, kind = heap[0]
            transaction = self._by_key.get(key)
            if transaction is not None and transaction.timers.get(kind) == sequence:
                return heap[0][0]
            heapq.heappop(heap)  # stale: cancelled, re-armed, or transaction gone
        return None

    def handle_timer(self, now: float) -> list[TimerOutput]:
        outputs: list[TimerOutput] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, sequence, key, kind = heapq.heappop(heap)
            transaction = self._by_key.get(key)
            if transaction is None or transaction.timers.get(kind) != sequence:
                continue
            del transaction.timers[kind]
            if kind is TimerKind.G:
                if transaction.state is State.COMPLETED and transaction.response is not None:
                    outputs.append(Retransmit(transaction.response, transaction.destination))
                    interval = min(2 * transaction.retransmit_interval_s, self._timers.t2_s)
                    transaction.retransmit_interval_s = interval
                    self._arm(transaction, TimerKind.G, now + interval)
            elif kind is TimerKind.H:
                outputs.append(AckTimeout(key))
                self._finish(transaction)
            else:  # I and J end the transaction's life
                self._finish(transaction)
        return outputs

    def _arm(self, transaction: ServerTransaction, kind: TimerKind, deadline: float) -> None:
        self._sequence += 1
        transaction.timers[kind] = self._sequence
        heapq.heappush(self._heap, (deadline, self._sequence, transaction.key, kind))

    def _arm_or_finish(
        self, transaction: ServerTransaction, kind: TimerKind, duration_s: float, now: float
    ) -> None:
        """Timers I and J are zero on reliable transports (RFC 3261 §17.2.1, §17.2.2)."""
        if self._reliable:
            self._finish(transaction)
        else:
            self._arm(transaction, kind, now + duration_s)

    def _cancel(self, transaction: ServerTransaction, kind: TimerKind) -> None:
        transaction.timers.pop(kind, None)

    def _finish(self, transaction: ServerTransaction) -> None:
        transaction.timers.clear()
        self._by_key.pop(transaction.key, None)
