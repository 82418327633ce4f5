"""What each MVNO owes the aggregator for a month (layer 2), from its contract.

    wholesale allocated   Σ wholesale of its own records, per host MNO (exact, never estimated)
  + margin                margin_percent of the wholesale, half up to the micro-unit
  + markups               per service: quantity x amount / per, half up
  + platform fee          fee x active subscribers (distinct subscribers with usage that month)
  + commitment shortfall  minimum_commitment − (the four above), when positive
  + rejected disputes     differences the MNO's rejection left standing, with pass_through only
  = amount due

Also the disputes to raise with the MNO from a period's discrepancies.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import msgspec

from settlement.model import PPM, Contract
from settlement.reconcile import UNALLOCATED, Discrepancy, Kind


def half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up (both non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


class MvnoSettlement(msgspec.Struct, frozen=True):
    tenant: str
    month: str
    currency: str
    wholesale_by_mno: dict[str, int]
    margin: int
    markups: dict[str, int]  # service → markup money
    active_subscribers: int
    platform_fee: int
    commitment_shortfall: int
    rejected_disputes: int
    amount_due: int

    @property
    def wholesale(self) -> int:
        return sum(self.wholesale_by_mno.values())

    @property
    def aggregator_revenue(self) -> int:
        """What the aggregator keeps: everything but the wholesale pass-through."""
        return self.amount_due - self.wholesale - self.rejected_disputes


def settle_mvno(
    contract: Contract,
    month: str,
    wholesale_by_mno: dict[str, int],
    quantity_by_service: dict[str, int],
    active_subscribers: int,
    rejected_disputes: int = 0,
) -> MvnoSettlement:
    """The month's figures of one MVNO; ``rejected_disputes`` is the Σ of differences owned by it
    whose disputes the MNO rejected (counted only when the contract passes them through)."""
    if active_subscribers < 0 or any(v < 0 for v in quantity_by_service.values()):
        raise ValueError("quantities and subscriber counts are never negative")
    wholesale = sum(wholesale_by_mno.values())
    margin = half_up(max(wholesale, 0) * contract.margin_ppm, PPM)
    if wholesale < 0:
        margin = -half_up(-wholesale * contract.margin_ppm, PPM)
    markups = {
        m.service: half_up(quantity_by_service.get(m.service, 0) * m.amount, m.per)
        for m in contract.markups
    }
    platform = contract.platform_fee * active_subscribers
    subtotal = wholesale + margin + sum(markups.values()) + platform
    shortfall = max(0, contract.minimum_commitment - subtotal)
    passed = rejected_disputes if contract.rejected_disputes == "pass_through" else 0
    return MvnoSettlement(
        tenant=contract.tenant,
        month=month,
        currency=contract.currency,
        wholesale_by_mno=dict(wholesale_by_mno),
        margin=margin,
        markups=markups,
        active_subscribers=active_subscribers,
        platform_fee=platform,
        commitment_shortfall=shortfall,
        rejected_disputes=passed,
        amount_due=subtotal + shortfall + passed,
    )


class DisputeDraft(msgspec.Struct, frozen=True):
    """One dispute to raise: the over-tolerance differences of one owner and kind."""

    owner: str
    kind: Kind
    claimed: int  # what the MNO invoiced beyond what we owe (> 0)
    count: int


def draft_disputes(discrepancies: Iterable[Discrepancy]) -> list[DisputeDraft]:
    """Group the over-tolerance differences by (owner, kind); a group where the MNO invoiced
    more than our records (Σ delta > 0) is a dispute. Undercharges are reported, not disputed."""
    totals: dict[tuple[str, Kind], list[int]] = defaultdict(lambda: [0, 0])
    for d in discrepancies:
        if d.disputable:
            slot = totals[(d.owner, d.kind)]
            slot[0] += d.delta
            slot[1] += 1
    return [
        DisputeDraft(owner, kind, claimed, count)
        for (owner, kind), (claimed, count) in sorted(
            totals.items(), key=lambda kv: (kv[0][0] == UNALLOCATED, kv[0][0], kv[0][1].value)
        )
        if claimed > 0
    ]
