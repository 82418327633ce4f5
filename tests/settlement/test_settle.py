"""MVNO figures from the contract, and disputes drafted from discrepancies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from settlement.model import Contract, Markup
from settlement.reconcile import UNALLOCATED, Discrepancy, Kind
from settlement.settle import draft_disputes, half_up, settle_mvno

CONTRACT = Contract(
    tenant="acme",
    currency="EUR",
    host_mnos=("net1", "net2"),
    margin_ppm=125_000,
    markups=(Markup("voice", 2000, 60),),
    platform_fee=150_000,
    minimum_commitment=0,
)


def test_figures() -> None:
    s = settle_mvno(
        CONTRACT, "2026-01", {"net1": 1_000_003, "net2": 5}, {"voice": 90, "data": 7}, 4
    )
    assert s.wholesale == 1_000_008
    assert s.margin == 125_001  # 125_001.0
    assert s.markups == {"voice": 3000}  # 90 s at 0.002 per 60 s
    assert s.platform_fee == 600_000
    assert s.commitment_shortfall == 0
    assert s.amount_due == 1_000_008 + 125_001 + 3000 + 600_000
    assert s.aggregator_revenue == 125_001 + 3000 + 600_000


def test_minimum_commitment_and_pass_through() -> None:
    contract = Contract(
        tenant="acme", currency="EUR", host_mnos=("net1",), margin_ppm=0, markups=(),
        platform_fee=0, minimum_commitment=5_000_000, rejected_disputes="pass_through",
    )  # fmt: skip
    s = settle_mvno(contract, "2026-01", {"net1": 1_000_000}, {}, 0, rejected_disputes=70)
    assert s.commitment_shortfall == 4_000_000
    assert s.rejected_disputes == 70
    assert s.amount_due == 5_000_070
    absorbed = settle_mvno(CONTRACT, "2026-01", {"net1": 0}, {}, 0, rejected_disputes=70)
    assert absorbed.rejected_disputes == 0


@given(st.integers(0, 10**15), st.integers(1, 10**7))
def test_half_up(numerator: int, denominator: int) -> None:
    got = half_up(numerator, denominator)
    assert abs(2 * (numerator - got * denominator)) <= denominator
    assert 2 * (numerator - got * denominator) < denominator


def _d(owner: str, kind: Kind, delta: int, over: bool = True) -> Discrepancy:
    return Discrepancy(
        "record", kind, owner, "2026-01-01", "voice", "home", 0, 0, 0, 0, delta, over
    )


def test_draft_disputes() -> None:
    drafts = draft_disputes(
        [
            _d("acme", Kind.MISSING_OURS, 100),
            _d("acme", Kind.MISSING_OURS, 50),
            _d("acme", Kind.MISSING_THEIRS, -70),  # undercharge: reported, not disputed
            _d("acme", Kind.MATCHED, 3, over=False),  # tolerated
            _d(UNALLOCATED, Kind.MISSING_OURS, 999),
            _d("globex", Kind.PRICE_MISMATCH, 10),
        ]
    )
    assert [(d.owner, d.kind, d.claimed, d.count) for d in drafts] == [
        ("acme", Kind.MISSING_OURS, 150, 2),
        ("globex", Kind.PRICE_MISMATCH, 10, 1),
        (UNALLOCATED, Kind.MISSING_OURS, 999, 1),
    ]
