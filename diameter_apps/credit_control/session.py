"""RFC 4006 §7 server session state machine (session- and event-based), as one table.

The charging service keeps each session's state in Redis so that any OCS process can continue
it; this module owns no state. The service reads the state the ledger reports (IDLE when the
ledger does not know the Session-Id), and:

1. before charging, ``admit(state, request_type)``: None to go on, else the Result-Code to
   answer with (e.g. 5002 UNKNOWN_SESSION_ID for a CCR-U/T of a session the ledger does not
   know: RFC 4006 §7 server table, DESIGN C2);
2. after charging, ``transition(state, event)`` with the ``*_OK`` / ``*_FAILED`` event (FAILED
   = the session-level Result-Code is not 2001; a 4012 on one MSCC is still OK) gives the next
   state and what to do with the Tcc timer and the reservations;
3. when Tcc expires (validity + grace without a CCR), ``TCC_EXPIRED``; when the session ends
   through an ASR/ASA or an operator action, ``SESSION_ABORTED``.

Retransmissions never reach this table: the (Session-Id, CC-Request-Number) duplicate check
comes first. Every (state, event) pair is defined (a test checks the table is complete);
:func:`transition` raises :class:`UndefinedTransition` only if the table is ever edited wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum

import msgspec

from diameter_apps.codes import ResultCode
from diameter_apps.credit_control.codes import CcRequestType
from diameter_apps.credit_control.errors import UndefinedTransition


class SessionState(IntEnum):
    IDLE = 0
    OPEN = 1


class SessionEvent(IntEnum):
    CCR_INITIAL_OK = 1
    CCR_INITIAL_FAILED = 2
    CCR_UPDATE_OK = 3
    CCR_UPDATE_FAILED = 4
    CCR_TERMINATION_OK = 5
    CCR_TERMINATION_FAILED = 6
    CCR_EVENT_OK = 7
    CCR_EVENT_FAILED = 8
    TCC_EXPIRED = 9
    SESSION_ABORTED = 10


class SessionAction(IntEnum):
    """What the service does with the Tcc timer and the session's reservations."""

    NONE = 0
    START_TCC = 1
    """Session opened: supervise it (Tcc = validity + grace)."""
    RESTART_TCC = 2
    STOP_TCC_COMMIT = 3
    """Session over: commit the reported usage, release what is left, stop Tcc."""
    RELEASE = 4
    """Session over without (further) usage: release reservations, write the usage record."""
    REFUSE = 5
    """Not allowed in this state: answer ``Transition.result_code``, touch nothing."""


class Transition(msgspec.Struct, frozen=True):
    next_state: SessionState
    action: SessionAction
    result_code: ResultCode | None = None
    """Set with REFUSE: the session-level Result-Code of the answer."""


_I = SessionState.IDLE
_O = SessionState.OPEN
_Ev = SessionEvent
_A = SessionAction


def _refuse(state: SessionState, code: ResultCode) -> Transition:
    return Transition(state, _A.REFUSE, code)


TRANSITIONS: Mapping[tuple[SessionState, SessionEvent], Transition] = {
    # RFC 4006 §7, server, session based.
    (_I, _Ev.CCR_INITIAL_OK): Transition(_O, _A.START_TCC),
    (_I, _Ev.CCR_INITIAL_FAILED): Transition(_I, _A.NONE),
    (_O, _Ev.CCR_UPDATE_OK): Transition(_O, _A.RESTART_TCC),
    (_O, _Ev.CCR_UPDATE_FAILED): Transition(_I, _A.STOP_TCC_COMMIT),
    (_O, _Ev.CCR_TERMINATION_OK): Transition(_I, _A.STOP_TCC_COMMIT),
    (_O, _Ev.CCR_TERMINATION_FAILED): Transition(_I, _A.STOP_TCC_COMMIT),
    (_O, _Ev.TCC_EXPIRED): Transition(_I, _A.RELEASE),
    (_O, _Ev.SESSION_ABORTED): Transition(_I, _A.STOP_TCC_COMMIT),
    # RFC 4006 §7, server, event based: an EVENT session never opens.
    (_I, _Ev.CCR_EVENT_OK): Transition(_I, _A.NONE),
    (_I, _Ev.CCR_EVENT_FAILED): Transition(_I, _A.NONE),
    # Requests the state does not allow (not in the RFC table; DESIGN C2).
    (_I, _Ev.CCR_UPDATE_OK): _refuse(_I, ResultCode.UNKNOWN_SESSION_ID),
    (_I, _Ev.CCR_UPDATE_FAILED): _refuse(_I, ResultCode.UNKNOWN_SESSION_ID),
    (_I, _Ev.CCR_TERMINATION_OK): _refuse(_I, ResultCode.UNKNOWN_SESSION_ID),
    (_I, _Ev.CCR_TERMINATION_FAILED): _refuse(_I, ResultCode.UNKNOWN_SESSION_ID),
    # A second INITIAL or an EVENT on a live Session-Id: Session-Ids are unique per session
    # (RFC 6733 §8.8), so this is a client fault on CC-Request-Type (5004), and the open
    # session goes on untouched.
    (_O, _Ev.CCR_INITIAL_OK): _refuse(_O, ResultCode.INVALID_AVP_VALUE),
    (_O, _Ev.CCR_INITIAL_FAILED): _refuse(_O, ResultCode.INVALID_AVP_VALUE),
    (_O, _Ev.CCR_EVENT_OK): _refuse(_O, ResultCode.INVALID_AVP_VALUE),
    (_O, _Ev.CCR_EVENT_FAILED): _refuse(_O, ResultCode.INVALID_AVP_VALUE),
    # Timers and aborts that race with the session's own end: nothing left to do.
    (_I, _Ev.TCC_EXPIRED): Transition(_I, _A.NONE),
    (_I, _Ev.SESSION_ABORTED): Transition(_I, _A.NONE),
}


def transition(state: SessionState, event: SessionEvent) -> Transition:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise UndefinedTransition(f"no transition for {state.name} on {event.name}") from None


def next_state(state: SessionState, event: SessionEvent) -> SessionState | ResultCode:
    """The state after ``event``, or the Result-Code to refuse it with (state unchanged)."""
    step = transition(state, event)
    if step.result_code is not None:
        return step.result_code
    return step.next_state


_OK_EVENT: Mapping[CcRequestType, SessionEvent] = {
    CcRequestType.INITIAL: SessionEvent.CCR_INITIAL_OK,
    CcRequestType.UPDATE: SessionEvent.CCR_UPDATE_OK,
    CcRequestType.TERMINATION: SessionEvent.CCR_TERMINATION_OK,
    CcRequestType.EVENT: SessionEvent.CCR_EVENT_OK,
}
_FAILED_EVENT: Mapping[CcRequestType, SessionEvent] = {
    CcRequestType.INITIAL: SessionEvent.CCR_INITIAL_FAILED,
    CcRequestType.UPDATE: SessionEvent.CCR_UPDATE_FAILED,
    CcRequestType.TERMINATION: SessionEvent.CCR_TERMINATION_FAILED,
    CcRequestType.EVENT: SessionEvent.CCR_EVENT_FAILED,
}


def request_event(request_type: CcRequestType, *, succeeded: bool) -> SessionEvent:
    """The event of a processed CCR: OK when its session-level Result-Code is 2001."""
    return (_OK_EVENT if succeeded else _FAILED_EVENT)[request_type]


def admit(state: SessionState, request_type: CcRequestType) -> ResultCode | None:
    """Before charging: None when a CCR of ``request_type`` may be processed in ``state``,
    else the Result-Code to answer with (the same whether it would succeed or fail)."""
    return transition(state, _OK_EVENT[request_type]).result_code
