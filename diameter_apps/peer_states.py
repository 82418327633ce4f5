"""The responder peer state machine of RFC 6733 §5.6 as one transition table.

States are the responder's subset of §5.6 (Closed → R-Open → Closing) plus two of ours:
``WAIT_CER`` (connection accepted, no CER yet; §5.6's "Closed" with R-Conn-CER pending) and
``DRAINING`` (shutdown requested: no new requests, in-flight ones finish, then DPR).

Every input that can come from the wire is defined in every state (a test enforces it); timer
and internal inputs are defined only where their timer can be armed. Looking up a pair that is
not in the table raises :class:`~diameter_apps.errors.PeerStateError`: an unplanned transition
is a bug to surface, never a silent pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum

import msgspec

from diameter_apps.errors import PeerStateError


class _IdentityHashed(Enum):
    """An Enum hashed by identity: Enum's own ``__hash__`` hashes the name in Python, and these
    key the transition and action tables looked up for every message. Members are singletons
    compared by identity, so the identity hash agrees with equality."""

    __hash__ = object.__hash__


class PeerState(_IdentityHashed):
    WAIT_CER = "wait_cer"
    R_OPEN = "r_open"
    DRAINING = "draining"
    CLOSING = "closing"
    CLOSED = "closed"


class PeerInput(_IdentityHashed):
    # from the wire
    CER_ACCEPTABLE = "cer_acceptable"
    CER_REJECTED = "cer_rejected"
    CEA = "cea"
    DWR = "dwr"
    DWA = "dwa"
    DPR = "dpr"
    DPA = "dpa"
    APP_REQUEST = "app_request"
    APP_ANSWER = "app_answer"
    MALFORMED_STREAM = "malformed_stream"
    # timers
    CER_TIMER = "cer_timer"
    WATCHDOG_DUE = "watchdog_due"
    WATCHDOG_SUSPECT = "watchdog_suspect"
    WATCHDOG_EXPIRED = "watchdog_expired"
    DRAIN_TIMER = "drain_timer"
    DPA_TIMER = "dpa_timer"
    # from the adapter
    SHUTDOWN = "shutdown"
    INFLIGHT_DRAINED = "inflight_drained"
    CONNECTION_LOST = "connection_lost"


WIRE_INPUTS = frozenset(
    {
        PeerInput.CER_ACCEPTABLE,
        PeerInput.CER_REJECTED,
        PeerInput.CEA,
        PeerInput.DWR,
        PeerInput.DWA,
        PeerInput.DPR,
        PeerInput.DPA,
        PeerInput.APP_REQUEST,
        PeerInput.APP_ANSWER,
        PeerInput.MALFORMED_STREAM,
    }
)


class Action(_IdentityHashed):
    SEND_CEA = "send_cea"
    REJECT_CER = "reject_cer"
    SEND_DWA = "send_dwa"
    WATCHDOG_ANSWERED = "watchdog_answered"
    SEND_DPA = "send_dpa"
    DISPATCH_REQUEST = "dispatch_request"
    REFUSE_REQUEST_BUSY = "refuse_request_busy"
    MATCH_ANSWER = "match_answer"
    SEND_DWR = "send_dwr"
    MARK_SUSPECT = "mark_suspect"
    START_DRAIN = "start_drain"
    SEND_DPR = "send_dpr"
    IGNORE_UNEXPECTED = "ignore_unexpected"
    CLOSE_UNEXPECTED = "close_unexpected"
    CLOSE_CER_TIMEOUT = "close_cer_timeout"
    CLOSE_WATCHDOG = "close_watchdog"
    CLOSE_DPA_RECEIVED = "close_dpa_received"
    CLOSE_DPA_TIMEOUT = "close_dpa_timeout"
    CLOSE_SHUTDOWN = "close_shutdown"
    CLOSE_LOST = "close_lost"
    CLOSE_MALFORMED = "close_malformed"
    NOTHING = "nothing"


class Transition(msgspec.Struct, frozen=True):
    action: Action
    next_state: PeerState


S = PeerState
I = PeerInput  # noqa: E741
A = Action


def _t(action: Action, next_state: PeerState) -> Transition:
    return Transition(action, next_state)


TRANSITIONS: Mapping[tuple[PeerState, PeerInput], Transition] = {
    # --- WAIT_CER: the first message must be a CER (B2) ----------------------------------
    (S.WAIT_CER, I.CER_ACCEPTABLE): _t(A.SEND_CEA, S.R_OPEN),
    (S.WAIT_CER, I.CER_REJECTED): _t(A.REJECT_CER, S.CLOSED),
    (S.WAIT_CER, I.CEA): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.DWR): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.DWA): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.DPR): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.DPA): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.APP_REQUEST): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.APP_ANSWER): _t(A.CLOSE_UNEXPECTED, S.CLOSED),
    (S.WAIT_CER, I.CER_TIMER): _t(A.CLOSE_CER_TIMEOUT, S.CLOSED),
    (S.WAIT_CER, I.SHUTDOWN): _t(A.CLOSE_SHUTDOWN, S.CLOSED),
    (S.WAIT_CER, I.CONNECTION_LOST): _t(A.CLOSE_LOST, S.CLOSED),
    (S.WAIT_CER, I.MALFORMED_STREAM): _t(A.CLOSE_MALFORMED, S.CLOSED),
    # --- R_OPEN ---------------------------------------------------------------------------
    (S.R_OPEN, I.CER_ACCEPTABLE): _t(A.SEND_CEA, S.R_OPEN),
    (S.R_OPEN, I.CER_REJECTED): _t(A.REJECT_CER, S.CLOSED),
    (S.R_OPEN, I.CEA): _t(A.IGNORE_UNEXPECTED, S.R_OPEN),
    (S.R_OPEN, I.DWR): _t(A.SEND_DWA, S.R_OPEN),
    (S.R_OPEN, I.DWA): _t(A.WATCHDOG_ANSWERED, S.R_OPEN),
    (S.R_OPEN, I.DPR): _t(A.SEND_DPA, S.CLOSED),
    (S.R_OPEN, I.DPA): _t(A.IGNORE_UNEXPECTED, S.R_OPEN),
    (S.R_OPEN, I.APP_REQUEST): _t(A.DISPATCH_REQUEST, S.R_OPEN),
    (S.R_OPEN, I.APP_ANSWER): _t(A.MATCH_ANSWER, S.R_OPEN),
    (S.R_OPEN, I.WATCHDOG_DUE): _t(A.SEND_DWR, S.R_OPEN),
    (S.R_OPEN, I.WATCHDOG_SUSPECT): _t(A.MARK_SUSPECT, S.R_OPEN),
    (S.R_OPEN, I.WATCHDOG_EXPIRED): _t(A.CLOSE_WATCHDOG, S.CLOSED),
    (S.R_OPEN, I.SHUTDOWN): _t(A.START_DRAIN, S.DRAINING),
    (S.R_OPEN, I.CONNECTION_LOST): _t(A.CLOSE_LOST, S.CLOSED),
    (S.R_OPEN, I.MALFORMED_STREAM): _t(A.CLOSE_MALFORMED, S.CLOSED),
    # --- DRAINING: shutdown asked; finish in-flight requests, refuse new ones (3004) ------
    (S.DRAINING, I.CER_ACCEPTABLE): _t(A.IGNORE_UNEXPECTED, S.DRAINING),
    (S.DRAINING, I.CER_REJECTED): _t(A.IGNORE_UNEXPECTED, S.DRAINING),
    (S.DRAINING, I.CEA): _t(A.IGNORE_UNEXPECTED, S.DRAINING),
    (S.DRAINING, I.DWR): _t(A.SEND_DWA, S.DRAINING),
    (S.DRAINING, I.DWA): _t(A.WATCHDOG_ANSWERED, S.DRAINING),
    (S.DRAINING, I.DPR): _t(A.SEND_DPA, S.CLOSED),
    (S.DRAINING, I.DPA): _t(A.IGNORE_UNEXPECTED, S.DRAINING),
    (S.DRAINING, I.APP_REQUEST): _t(A.REFUSE_REQUEST_BUSY, S.DRAINING),
    (S.DRAINING, I.APP_ANSWER): _t(A.MATCH_ANSWER, S.DRAINING),
    (S.DRAINING, I.WATCHDOG_DUE): _t(A.SEND_DWR, S.DRAINING),
    (S.DRAINING, I.WATCHDOG_SUSPECT): _t(A.MARK_SUSPECT, S.DRAINING),
    (S.DRAINING, I.WATCHDOG_EXPIRED): _t(A.CLOSE_WATCHDOG, S.CLOSED),
    (S.DRAINING, I.INFLIGHT_DRAINED): _t(A.SEND_DPR, S.CLOSING),
    (S.DRAINING, I.DRAIN_TIMER): _t(A.SEND_DPR, S.CLOSING),
    (S.DRAINING, I.SHUTDOWN): _t(A.NOTHING, S.DRAINING),
    (S.DRAINING, I.CONNECTION_LOST): _t(A.CLOSE_LOST, S.CLOSED),
    (S.DRAINING, I.MALFORMED_STREAM): _t(A.CLOSE_MALFORMED, S.CLOSED),
    # --- CLOSING: our DPR is out, waiting for the DPA ------------------------------------
    (S.CLOSING, I.CER_ACCEPTABLE): _t(A.IGNORE_UNEXPECTED, S.CLOSING),
    (S.CLOSING, I.CER_REJECTED): _t(A.IGNORE_UNEXPECTED, S.CLOSING),
    (S.CLOSING, I.CEA): _t(A.IGNORE_UNEXPECTED, S.CLOSING),
    (S.CLOSING, I.DWR): _t(A.SEND_DWA, S.CLOSING),
    (S.CLOSING, I.DWA): _t(A.WATCHDOG_ANSWERED, S.CLOSING),
    (S.CLOSING, I.DPR): _t(A.SEND_DPA, S.CLOSED),
    (S.CLOSING, I.DPA): _t(A.CLOSE_DPA_RECEIVED, S.CLOSED),
    (S.CLOSING, I.APP_REQUEST): _t(A.REFUSE_REQUEST_BUSY, S.CLOSING),
    (S.CLOSING, I.APP_ANSWER): _t(A.MATCH_ANSWER, S.CLOSING),
    (S.CLOSING, I.WATCHDOG_DUE): _t(A.NOTHING, S.CLOSING),
    (S.CLOSING, I.WATCHDOG_SUSPECT): _t(A.NOTHING, S.CLOSING),
    (S.CLOSING, I.WATCHDOG_EXPIRED): _t(A.NOTHING, S.CLOSING),
    (S.CLOSING, I.DPA_TIMER): _t(A.CLOSE_DPA_TIMEOUT, S.CLOSED),
    (S.CLOSING, I.SHUTDOWN): _t(A.NOTHING, S.CLOSING),
    (S.CLOSING, I.CONNECTION_LOST): _t(A.CLOSE_LOST, S.CLOSED),
    (S.CLOSING, I.MALFORMED_STREAM): _t(A.CLOSE_MALFORMED, S.CLOSED),
    # --- CLOSED: bytes after the end are dropped ------------------------------------------
    (S.CLOSED, I.CER_ACCEPTABLE): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.CER_REJECTED): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.CEA): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.DWR): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.DWA): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.DPR): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.DPA): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.APP_REQUEST): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.APP_ANSWER): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.SHUTDOWN): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.CONNECTION_LOST): _t(A.NOTHING, S.CLOSED),
    (S.CLOSED, I.MALFORMED_STREAM): _t(A.NOTHING, S.CLOSED),
}


def transition(state: PeerState, peer_input: PeerInput) -> Transition:
    try:
        return TRANSITIONS[(state, peer_input)]
    except KeyError:
        raise PeerStateError(
            f"no transition for input {peer_input.value} in {state.value}"
        ) from None
