"""Reconciliation: classification, exact splitting, record matching and the period identity.

The property tests are the issue's guarantee: for any usage and any invoice (and detail), the
invoice total is explained to the micro-unit and every micro-unit has exactly one owner.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.invoice import Invoice, InvoiceLine
from settlement.matching import OurRecord, TheirRecord, match_records
from settlement.model import HostMno, Matching, MnoZone, Tolerance, WholesalePrice
from settlement.reconcile import (
    UNALLOCATED,
    Kind,
    OurCell,
    TheirCell,
    check_rates,
    compute_identity,
    list_price,
    reconcile_cells,
    split_exact,
)

TOL = Tolerance(quantity_absolute=10, money_absolute=5)
MNO = HostMno(
    id="net1",
    name="Net One",
    currency="EUR",
    timezone="UTC",
    home_zone="home",
    services={"data": "byte", "voice": "second", "sms": "event"},
    zones=(MnoZone("home", ("26201",)), MnoZone("world", default=True)),
    prices=(WholesalePrice("voice", "home", 12_000, 60), WholesalePrice("data", "*", 2000, 1000)),
    tolerances={"data": TOL, "voice": TOL},
    matching=Matching(5),
)


def _invoice(*lines: tuple[str, str, str, int, int]) -> Invoice:
    return Invoice("inv.csv", tuple(InvoiceLine(i + 2, *fields) for i, fields in enumerate(lines)))


def test_split_exact() -> None:
    assert split_exact(10, [1, 1, 1]) == [4, 3, 3]
    assert split_exact(-10, [1, 1, 1]) == [-4, -3, -3]
    assert split_exact(7, [0, 0]) == [7, 0]
    assert split_exact(100, [30, 70]) == [30, 70]


def test_cell_classes() -> None:
    ours = [
        OurCell("acme", "2026-01-01", "voice", "home", 600, 120_000),  # matched exactly
        OurCell("acme", "2026-01-02", "voice", "home", 600, 120_000),  # quantity mismatch
        OurCell("acme", "2026-01-03", "voice", "home", 600, 120_000),  # price mismatch
        OurCell("acme", "2026-01-04", "voice", "home", 600, 120_000),  # missing theirs
        OurCell("acme", "2026-01-06", "voice", "home", 600, 120_000),  # tolerated
    ]
    invoice = _invoice(
        ("2026-01-01", "voice", "home", 600, 120_000),
        ("2026-01-02", "voice", "home", 900, 180_000),
        ("2026-01-03", "voice", "home", 600, 150_000),
        ("2026-01-05", "voice", "home", 60, 12_000),  # missing ours
        ("2026-01-06", "voice", "home", 605, 120_004),
    )
    found = {d.day: d for d in reconcile_cells(MNO, ours, invoice)}
    assert set(found) == {"2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-06"}
    assert (
        found["2026-01-02"].kind is Kind.QUANTITY_MISMATCH and found["2026-01-02"].delta == 60_000
    )
    assert found["2026-01-03"].kind is Kind.PRICE_MISMATCH
    assert found["2026-01-04"].kind is Kind.MISSING_THEIRS and found["2026-01-04"].delta == -120_000
    assert found["2026-01-05"].kind is Kind.MISSING_OURS
    assert found["2026-01-05"].owner == UNALLOCATED
    assert found["2026-01-05"].evidence == "inv.csv:5"
    assert found["2026-01-06"].kind is Kind.MATCHED and not found["2026-01-06"].disputable
    identity = compute_identity(
        invoice.total,
        {"acme": 600_000},
        [(d.owner, d.disputable, d.delta) for d in found.values()],
    )
    assert identity.balanced
    assert identity.tolerated == 4
    assert identity.unallocated == 12_000
    assert identity.disputed == 60_000 + 30_000 - 120_000


def test_a_shared_cell_difference_is_split_by_amount() -> None:
    ours = [
        OurCell("acme", "2026-01-01", "data", "home", 1000, 2_000),
        OurCell("globex", "2026-01-01", "data", "home", 2000, 4_001),
    ]
    invoice = _invoice(("2026-01-01", "data", "home", 9000, 18_000))
    parts = {d.owner: d.delta for d in reconcile_cells(MNO, ours, invoice)}
    assert sum(parts.values()) == 18_000 - 6_001
    assert parts == {"acme": 3_999, "globex": 8_000}


def test_rate_check_against_the_price_list() -> None:
    invoice = _invoice(
        ("2026-01-01", "voice", "home", 120, 24_000),  # 2 min at 0.012: right
        ("2026-01-02", "voice", "home", 120, 30_000),  # wrong rate
    )
    (check,) = check_rates(MNO, invoice)
    assert (check.line, check.expected, check.invoiced) == (3, 24_000, 30_000)
    assert list_price(1, 1, 2) == 1  # half up


def test_record_matching_classes() -> None:
    ours = [
        OurRecord(1, "acme", "1001", "voice", 100, 60, 12_000),  # matched
        OurRecord(2, "acme", "1001", "voice", 500, 60, 12_000),  # quantity mismatch
        OurRecord(3, "acme", "1001", "voice", 900, 60, 12_000),  # price mismatch
        OurRecord(4, "acme", "1001", "voice", 2000, 60, 12_000),  # missing theirs
    ]
    theirs = [
        TheirRecord(11, "1001", "voice", 103, 61, 12_002),
        TheirRecord(12, "1001", "voice", 498, 120, 24_000),
        TheirRecord(13, "1001", "voice", 900, 60, 20_000),
        TheirRecord(14, "1001", "voice", 3000, 60, 12_000),  # missing ours, acme's IMSI
        TheirRecord(15, "9999", "voice", 3000, 60, 12_000),  # missing ours, nobody's
        TheirRecord(16, "1001", "sms", 100, 1, 10_000),  # other service: not record 1
    ]
    owners = {"1001": "acme"}
    results = match_records(ours, theirs, 5, {"voice": TOL}, lambda i: owners.get(i, UNALLOCATED))
    by = {(r.our_id, r.their_id): r for r in results}
    assert by[(1, 11)].kind is Kind.MATCHED and by[(1, 11)].delta == 2
    assert by[(2, 12)].kind is Kind.QUANTITY_MISMATCH
    assert by[(3, 13)].kind is Kind.PRICE_MISMATCH and by[(3, 13)].delta == 8_000
    assert by[(4, None)].kind is Kind.MISSING_THEIRS and by[(4, None)].delta == -12_000
    assert by[(None, 14)].owner == "acme"
    assert by[(None, 15)].owner == UNALLOCATED
    assert by[(None, 16)].kind is Kind.MISSING_OURS


def test_greedy_takes_the_closest_pair_first() -> None:
    ours = [OurRecord(1, "a", "1", "sms", 100, 1, 1), OurRecord(2, "a", "1", "sms", 104, 1, 1)]
    theirs = [TheirRecord(7, "1", "sms", 103, 1, 1), TheirRecord(8, "1", "sms", 99, 1, 1)]
    results = match_records(ours, theirs, 5, {}, lambda _i: "")
    assert {(r.our_id, r.their_id) for r in results} == {(2, 7), (1, 8)}


# ---- properties -------------------------------------------------------------------------

TENANTS = ("acme", "globex", "initech")
DAYS = ("2026-01-01", "2026-01-02")
SERVICES = ("data", "voice", "sms")
ZONES = ("home", "world")

records = st.lists(
    st.tuples(
        st.sampled_from(TENANTS),
        st.sampled_from(("1001", "1002", "2001", "3001")),
        st.sampled_from(SERVICES),
        st.sampled_from(DAYS),
        st.sampled_from(ZONES),
        st.integers(0, 200),  # start_s
        st.integers(0, 5000),  # quantity
        st.integers(0, 10**9),  # amount
    ),
    max_size=40,
)
invoice_cells = st.dictionaries(
    st.tuples(st.sampled_from(DAYS), st.sampled_from(SERVICES), st.sampled_from(ZONES)),
    st.tuples(st.integers(0, 10**5), st.integers(-(10**9), 10**10)),
    max_size=12,
)
detail = st.lists(
    st.tuples(
        st.sampled_from(("1001", "1002", "2001", "3001", "9999")),
        st.sampled_from(SERVICES),
        st.sampled_from(DAYS),
        st.sampled_from(ZONES),
        st.integers(0, 200),
        st.integers(0, 5000),
        st.integers(0, 10**9),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    records,
    invoice_cells,
    detail,
    st.frozensets(st.sampled_from(SERVICES)),
    st.integers(0, 50),
    st.integers(0, 10**6),
)
def test_every_micro_unit_is_attributed(
    ours_raw: list[tuple[str, str, str, str, str, int, int, int]],
    cells: dict[tuple[str, str, str], tuple[int, int]],
    theirs_raw: list[tuple[str, str, str, str, int, int, int]],
    covered: frozenset[str],
    q_tol: int,
    m_tol: int,
) -> None:
    tol = Tolerance(q_tol, 1000, m_tol, 1000)
    mno = HostMno(
        id="net1", name="n", currency="EUR", timezone="UTC", home_zone="home",
        services=MNO.services, zones=MNO.zones, prices=MNO.prices,
        tolerances={s: tol for s in SERVICES}, matching=Matching(5),
    )  # fmt: skip
    imsi_owner = {"1001": "acme", "1002": "acme", "2001": "globex", "3001": "initech"}
    ours = [
        OurRecord(i, imsi_owner[imsi], imsi, svc, start, qty, amt)
        for i, (_t, imsi, svc, _day, _zone, start, qty, amt) in enumerate(ours_raw)
    ]
    where = {i: (r[3], r[4]) for i, r in enumerate(ours_raw)}
    allocated: dict[str, int] = defaultdict(int)
    our_cells: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for record in ours:
        allocated[record.tenant] += record.amount
        day, zone = where[record.id]
        slot = our_cells[(record.tenant, day, record.service, zone)]
        slot[0] += record.quantity
        slot[1] += record.amount
    invoice = _invoice(
        *((day, svc, zone, qty, amt) for (day, svc, zone), (qty, amt) in sorted(cells.items()))
    )
    theirs = [
        TheirRecord(1000 + i, imsi, svc, start, qty, amt)
        for i, (imsi, svc, _d, _z, start, qty, amt) in enumerate(theirs_raw)
        if svc in covered
    ]
    their_where = {1000 + i: (r[2], r[3]) for i, r in enumerate(theirs_raw)}
    their_cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for their in theirs:
        day, zone = their_where[their.id]
        slot = their_cells[(day, their.service, zone)]
        slot[0] += their.quantity
        slot[1] += their.amount
    cell_rows = reconcile_cells(
        mno,
        [OurCell(t, d, s, z, q, a) for (t, d, s, z), (q, a) in our_cells.items()],
        invoice,
        covered,
        [TheirCell(d, s, z, q, a) for (d, s, z), (q, a) in their_cells.items()],
    )
    covered_ours = [r for r in ours if r.service in covered]
    results = match_records(
        covered_ours, theirs, 5, mno.tolerances, lambda i: imsi_owner.get(i, UNALLOCATED)
    )
    # every record in exactly one result
    assert Counter(r.our_id for r in results if r.our_id is not None) == Counter(
        r.id for r in covered_ours
    )
    assert Counter(r.their_id for r in results if r.their_id is not None) == Counter(
        r.id for r in theirs
    )
    differences = [(d.owner, d.disputable, d.delta) for d in cell_rows] + [
        (r.owner, r.disputable, r.delta) for r in results
    ]
    identity = compute_identity(invoice.total, dict(allocated), differences)
    assert identity.balanced, identity.describe()
    # and per owner: what each owner is attributed sums to the invoice
    per_owner: dict[str, int] = defaultdict(int, allocated)
    for owner, _over, delta in differences:
        per_owner[owner] += delta
    assert sum(per_owner.values()) == invoice.total
    assert set(per_owner) <= {*TENANTS, UNALLOCATED}
