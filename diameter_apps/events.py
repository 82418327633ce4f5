"""Events the sans-IO peer yields to its adapter. Immutable; one class per kind of news."""

from __future__ import annotations

import msgspec

from diameter_apps.codec import Message


class PeerOpened(msgspec.Struct, frozen=True):
    """CER/CEA done: the peer is in R-Open and may send application requests."""

    origin_host: str
    origin_realm: str
    application_ids: tuple[int, ...]
    """The applications both sides support (what we advertised back in the CEA)."""


class RequestReceived(msgspec.Struct, frozen=True):
    """An application request passed every base check: run its handler, then
    ``peer.send_answer(event, answer, now)``."""

    message: Message
    application_id: int
    command_code: int
    hop_by_hop: int
    end_to_end: int
    peer_origin_host: str
    received_at: float


class AnswerReceived(msgspec.Struct, frozen=True):
    """The answer to a request we sent with ``send_request``."""

    message: Message
    hop_by_hop: int
    command_code: int


class RequestTimedOut(msgspec.Struct, frozen=True):
    """No answer within ``timeout_s`` (or the connection went away first)."""

    hop_by_hop: int
    command_code: int


class PeerClosed(msgspec.Struct, frozen=True):
    """The connection is over: flush ``data_to_send()`` and close the transport."""

    reason: str


class ProtocolDeviation(msgspec.Struct, frozen=True):
    """The peer broke a rule the lenient profile tolerates (log it, nothing else to do)."""

    description: str


class ErrorAnswered(msgspec.Struct, frozen=True):
    """The base stack answered a request itself with an error (for logs and metrics)."""

    command_code: int
    result_code: int
    error_message: str


class DuplicateAnswered(msgspec.Struct, frozen=True):
    """A retransmitted request got the cached answer of the original (B7)."""

    command_code: int
    end_to_end: int


Event = (
    PeerOpened
    | RequestReceived
    | AnswerReceived
    | RequestTimedOut
    | PeerClosed
    | ProtocolDeviation
    | ErrorAnswered
    | DuplicateAnswered
)
