"""The RFC 4006 §7 server session table: complete, and the transitions the RFC names."""

from __future__ import annotations

import itertools

import pytest

from diameter_apps.codes import ResultCode
from diameter_apps.credit_control import (
    CcRequestType,
    SessionAction,
    SessionEvent,
    SessionState,
    Transition,
    admit,
    next_state,
    request_event,
    transition,
)
from diameter_apps.credit_control.errors import UndefinedTransition
from diameter_apps.credit_control.session import TRANSITIONS

IDLE, OPEN = SessionState.IDLE, SessionState.OPEN
E = SessionEvent


def test_every_state_event_pair_is_defined() -> None:
    pairs = set(itertools.product(SessionState, SessionEvent))
    assert set(TRANSITIONS) == pairs
    for pair in pairs:
        assert isinstance(transition(*pair), Transition)


def test_refusals_keep_the_state_and_carry_a_result_code() -> None:
    for (state, _), step in TRANSITIONS.items():
        refused = step.action is SessionAction.REFUSE
        assert refused == (step.result_code is not None)
        if refused:
            assert step.next_state is state


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (IDLE, E.CCR_INITIAL_OK, Transition(OPEN, SessionAction.START_TCC)),
        (IDLE, E.CCR_INITIAL_FAILED, Transition(IDLE, SessionAction.NONE)),
        (OPEN, E.CCR_UPDATE_OK, Transition(OPEN, SessionAction.RESTART_TCC)),
        (OPEN, E.CCR_UPDATE_FAILED, Transition(IDLE, SessionAction.STOP_TCC_COMMIT)),
        (OPEN, E.CCR_TERMINATION_OK, Transition(IDLE, SessionAction.STOP_TCC_COMMIT)),
        (OPEN, E.CCR_TERMINATION_FAILED, Transition(IDLE, SessionAction.STOP_TCC_COMMIT)),
        (OPEN, E.TCC_EXPIRED, Transition(IDLE, SessionAction.RELEASE)),
        (OPEN, E.SESSION_ABORTED, Transition(IDLE, SessionAction.STOP_TCC_COMMIT)),
        (IDLE, E.CCR_EVENT_OK, Transition(IDLE, SessionAction.NONE)),
        (IDLE, E.CCR_EVENT_FAILED, Transition(IDLE, SessionAction.NONE)),
        (IDLE, E.TCC_EXPIRED, Transition(IDLE, SessionAction.NONE)),
    ],
)
def test_rfc_4006_server_transitions(
    state: SessionState, event: SessionEvent, expected: Transition
) -> None:
    assert transition(state, event) == expected
    assert next_state(state, event) is expected.next_state


@pytest.mark.parametrize(
    ("state", "request_type", "refusal"),
    [
        (IDLE, CcRequestType.INITIAL, None),
        (IDLE, CcRequestType.UPDATE, ResultCode.UNKNOWN_SESSION_ID),
        (IDLE, CcRequestType.TERMINATION, ResultCode.UNKNOWN_SESSION_ID),
        (IDLE, CcRequestType.EVENT, None),
        (OPEN, CcRequestType.INITIAL, ResultCode.INVALID_AVP_VALUE),
        (OPEN, CcRequestType.UPDATE, None),
        (OPEN, CcRequestType.TERMINATION, None),
        (OPEN, CcRequestType.EVENT, ResultCode.INVALID_AVP_VALUE),
    ],
)
def test_admit_before_charging(
    state: SessionState, request_type: CcRequestType, refusal: ResultCode | None
) -> None:
    assert admit(state, request_type) == refusal
    for succeeded in (True, False):
        outcome = next_state(state, request_event(request_type, succeeded=succeeded))
        if refusal is None:
            assert isinstance(outcome, SessionState)
        else:
            assert outcome == refusal


def test_a_whole_session_and_what_follows_its_end() -> None:
    state = IDLE
    for request_type in (CcRequestType.INITIAL, CcRequestType.UPDATE, CcRequestType.UPDATE):
        outcome = next_state(state, request_event(request_type, succeeded=True))
        assert isinstance(outcome, SessionState)
        state = outcome
    assert state is OPEN
    state_after = next_state(state, E.CCR_TERMINATION_OK)
    assert state_after is IDLE
    assert admit(IDLE, CcRequestType.UPDATE) == ResultCode.UNKNOWN_SESSION_ID


def test_an_edited_table_with_a_hole_raises() -> None:
    from diameter_apps.credit_control import session

    original = session.TRANSITIONS
    session.TRANSITIONS = {k: v for k, v in original.items() if k != (OPEN, E.TCC_EXPIRED)}
    try:
        with pytest.raises(UndefinedTransition, match="OPEN on TCC_EXPIRED"):
            transition(OPEN, E.TCC_EXPIRED)
    finally:
        session.TRANSITIONS = original
