"""The settlement period of one host MNO and one month, as a transition table (DESIGN §2.3).

    open ──import_invoice──▶ invoice_imported ──reconcile──▶ reconciled ──raise_dispute──▶ disputed
                                   ▲  │ import_invoice / import_detail        │ reconcile      │
                                   └──┘◀──────────── import_detail ──────────┘                 │
    reconciled | disputed ──approve──▶ approved ──close──▶ closed

Every step is recorded with who took it and when (``now`` is passed in). A (state, event) pair
not in the table is an error, never a silent pass. Approval also needs the period identity to
hold; that guard lives with the figures (``settlement.ledger.check_identity``), the caller
checks it before asking for the step.
"""

from __future__ import annotations

import re
from enum import StrEnum

import msgspec

from settlement.errors import TransitionError

_MONTH = re.compile(r"(\d{4})-(0[1-9]|1[0-2])")
ACTOR_CHARS_MAX = 128


class PeriodState(StrEnum):
    OPEN = "open"
    INVOICE_IMPORTED = "invoice_imported"
    RECONCILED = "reconciled"
    DISPUTED = "disputed"
    APPROVED = "approved"
    CLOSED = "closed"


class PeriodEvent(StrEnum):
    IMPORT_INVOICE = "import_invoice"
    IMPORT_DETAIL = "import_detail"
    RECONCILE = "reconcile"
    RAISE_DISPUTE = "raise_dispute"
    APPROVE = "approve"
    CLOSE = "close"


S, E = PeriodState, PeriodEvent
TRANSITIONS: dict[tuple[PeriodState, PeriodEvent], PeriodState] = {
    (S.OPEN, E.IMPORT_INVOICE): S.INVOICE_IMPORTED,
    (S.INVOICE_IMPORTED, E.IMPORT_INVOICE): S.INVOICE_IMPORTED,  # a corrected invoice replaces
    (S.INVOICE_IMPORTED, E.IMPORT_DETAIL): S.INVOICE_IMPORTED,
    (S.INVOICE_IMPORTED, E.RECONCILE): S.RECONCILED,
    (S.RECONCILED, E.RECONCILE): S.RECONCILED,
    (S.RECONCILED, E.IMPORT_DETAIL): S.INVOICE_IMPORTED,  # new evidence: reconcile again
    (S.RECONCILED, E.RAISE_DISPUTE): S.DISPUTED,
    (S.DISPUTED, E.RAISE_DISPUTE): S.DISPUTED,
    (S.RECONCILED, E.APPROVE): S.APPROVED,
    (S.DISPUTED, E.APPROVE): S.APPROVED,
    (S.APPROVED, E.CLOSE): S.CLOSED,
}


class Transition(msgspec.Struct, frozen=True):
    from_state: PeriodState
    to_state: PeriodState
    event: PeriodEvent
    actor: str
    at_s: float


def check_month(text: str) -> str:
    """``YYYY-MM`` or ValueError."""
    if not _MONTH.fullmatch(text):
        raise ValueError(f"{text!r} is not a month (YYYY-MM)")
    return text


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + mon // 12:04d}-{mon % 12 + 1:02d}"


def check_actor(actor: str) -> str:
    actor = actor.strip()
    if not actor or len(actor) > ACTOR_CHARS_MAX or not actor.isprintable():
        raise ValueError(f"the actor must be 1..{ACTOR_CHARS_MAX} printable characters")
    return actor


def step(state: PeriodState, event: PeriodEvent, actor: str, now_s: float) -> Transition:
    """The transition ``event`` takes from ``state``, or TransitionError naming what is allowed."""
    target = TRANSITIONS.get((state, event))
    if target is None:
        allowed = sorted(e.value for (s, e) in TRANSITIONS if s == state)
        hint = ", ".join(allowed) if allowed else "nothing (the period is closed)"
        raise TransitionError(
            f"a period in state {state.value} cannot {event.value}; it can: {hint}"
        )
    return Transition(state, target, event, check_actor(actor), now_s)
