"""Disputes with the host MNO, as a transition table.

    open ──send──▶ sent ──accept──▶ accepted ──credit──▶ credited
                     └──reject──▶ rejected

An accepted dispute lowers the amount payable to the MNO by its ``accepted`` amount (which may
be less than claimed); ``credited`` records that the MNO's credit note arrived. A rejected
dispute leaves the MNO's figure standing; the MVNO's contract says who bears it.
"""

from __future__ import annotations

from enum import StrEnum

from settlement.errors import TransitionError


class DisputeState(StrEnum):
    OPEN = "open"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CREDITED = "credited"


class DisputeEvent(StrEnum):
    SEND = "send"
    ACCEPT = "accept"
    REJECT = "reject"
    CREDIT = "credit"


D, V = DisputeState, DisputeEvent
DISPUTE_TRANSITIONS: dict[tuple[DisputeState, DisputeEvent], DisputeState] = {
    (D.OPEN, V.SEND): D.SENT,
    (D.SENT, V.ACCEPT): D.ACCEPTED,
    (D.SENT, V.REJECT): D.REJECTED,
    (D.ACCEPTED, V.CREDIT): D.CREDITED,
}


def dispute_step(state: DisputeState, event: DisputeEvent) -> DisputeState:
    target = DISPUTE_TRANSITIONS.get((state, event))
    if target is None:
        allowed = sorted(e.value for (s, e) in DISPUTE_TRANSITIONS if s == state)
        hint = ", ".join(allowed) if allowed else "nothing (final state)"
        raise TransitionError(
            f"a dispute in state {state.value} cannot {event.value}; it can: {hint}"
        )
    return target


def credit_of(state: DisputeState, claimed: int, accepted: int | None) -> int:
    """What a dispute takes off the amount payable to the MNO (micro-units, >= 0).

    ``claimed`` is the amount we contest (positive: the MNO invoiced more than we owe).
    """
    if state in (DisputeState.ACCEPTED, DisputeState.CREDITED):
        return claimed if accepted is None else accepted
    return 0


def check_accepted(claimed: int, accepted: int) -> int:
    if not 0 <= accepted <= claimed:
        raise ValueError(f"the accepted amount must be between 0 and the claimed {claimed}")
    return accepted
