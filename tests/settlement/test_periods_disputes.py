"""The period and dispute state machines: every defined step, every undefined one refused."""

from __future__ import annotations

import itertools

import pytest

from settlement.disputes import (
    DISPUTE_TRANSITIONS,
    DisputeEvent,
    DisputeState,
    check_accepted,
    credit_of,
    dispute_step,
)
from settlement.errors import TransitionError
from settlement.periods import (
    TRANSITIONS,
    PeriodEvent,
    PeriodState,
    check_month,
    next_month,
    step,
)


def test_a_month_walks_open_to_closed() -> None:
    state = PeriodState.OPEN
    history = []
    for at, event in enumerate(
        [
            PeriodEvent.IMPORT_INVOICE,
            PeriodEvent.RECONCILE,
            PeriodEvent.RAISE_DISPUTE,
            PeriodEvent.APPROVE,
            PeriodEvent.CLOSE,
        ]
    ):
        t = step(state, event, "alice", 1000.0 + at)
        history.append(t)
        state = t.to_state
    assert state is PeriodState.CLOSED
    assert [t.actor for t in history] == ["alice"] * 5
    assert [t.at_s for t in history] == [1000.0, 1001.0, 1002.0, 1003.0, 1004.0]
    assert history[2].from_state is PeriodState.RECONCILED
    assert history[2].to_state is PeriodState.DISPUTED


@pytest.mark.parametrize(("state", "event"), list(itertools.product(PeriodState, PeriodEvent)))
def test_every_pair_is_defined_or_refused(state: PeriodState, event: PeriodEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert step(state, event, "ops", 0.0).to_state is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(TransitionError, match=f"state {state.value} cannot {event.value}"):
            step(state, event, "ops", 0.0)


def test_closed_is_final_and_approval_needs_reconciliation() -> None:
    with pytest.raises(TransitionError, match="nothing"):
        step(PeriodState.CLOSED, PeriodEvent.RECONCILE, "ops", 0.0)
    with pytest.raises(TransitionError, match="it can: import_detail, import_invoice, reconcile"):
        step(PeriodState.INVOICE_IMPORTED, PeriodEvent.APPROVE, "ops", 0.0)


def test_actor_is_required() -> None:
    with pytest.raises(ValueError, match="actor"):
        step(PeriodState.OPEN, PeriodEvent.IMPORT_INVOICE, "  ", 0.0)


def test_months() -> None:
    assert check_month("2026-01") == "2026-01"
    assert next_month("2026-01") == "2026-02"
    assert next_month("2026-12") == "2027-01"
    for bad in ("2026-13", "2026-1", "26-01", "2026-00"):
        with pytest.raises(ValueError):
            check_month(bad)


def test_dispute_lifecycle_and_credit() -> None:
    state = DisputeState.OPEN
    assert credit_of(state, 500, None) == 0
    state = dispute_step(state, DisputeEvent.SEND)
    assert credit_of(state, 500, None) == 0
    accepted = dispute_step(state, DisputeEvent.ACCEPT)
    assert credit_of(accepted, 500, None) == 500
    assert credit_of(accepted, 500, 300) == 300
    credited = dispute_step(accepted, DisputeEvent.CREDIT)
    assert credit_of(credited, 500, 300) == 300
    rejected = dispute_step(state, DisputeEvent.REJECT)
    assert credit_of(rejected, 500, None) == 0
    with pytest.raises(ValueError):
        check_accepted(500, 501)


@pytest.mark.parametrize(("state", "event"), list(itertools.product(DisputeState, DisputeEvent)))
def test_dispute_pairs(state: DisputeState, event: DisputeEvent) -> None:
    if (state, event) in DISPUTE_TRANSITIONS:
        assert dispute_step(state, event) is DISPUTE_TRANSITIONS[(state, event)]
    else:
        with pytest.raises(TransitionError):
            dispute_step(state, event)
