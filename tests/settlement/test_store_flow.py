"""One month through the store: open, invoice, reconcile, disputes, approve, close; the identity
to the micro-unit, and a record that arrives after close settled in the next period."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

import pytest

from settlement.disputes import DisputeEvent, DisputeState
from settlement.errors import NotBalancedError, SettlementError, TransitionError
from settlement.invoice import Invoice, InvoiceLine
from settlement.model import HostMno, SettlementCatalog
from settlement.periods import PeriodState
from tariffs.model import Catalog
from tests.settlement.conftest import BERLIN, at
from tests.settlement.usage_rows import usage
from usage.row import UsageRow
from usage.settle_store import SettlementStore
from usage.store import UsageStore

MONTH = "2026-01"


def rows() -> list[UsageRow]:
    return [
        usage("acme", 1, "voice", at(3), 120, 24_000),
        usage("acme", 1, "voice", at(3, 15), 60, 12_000),
        usage("acme", 2, "data", at(4), 10 * 1048576, 20_000),
        usage("acme", 2, "data", at(4, 18), 1048576, 2_000, visited_plmn="20801"),  # eu
        usage("globex", 1, "voice", at(3, 9), 300, 60_000),
        usage("globex", 1, "sms", at(5), 1, 10_000),
        usage("globex", 3, "sms", at(5, 13), 1, 10_000),
        # not this period: another MNO, a refund, another month (Berlin time!)
        usage("acme", 3, "sms", at(5), 1, 10_000, host_mno="other-mno"),
        usage("acme", 3, "sms", at(5), 1, 0, kind="refund"),
        usage("acme", 3, "sms", at(1, 0, 30, month=2), 1, 10_000),  # Feb 1st 00:30 Berlin
    ]


def invoice_of(lines: dict[tuple[str, str, str], tuple[int, int]]) -> Invoice:
    return Invoice(
        "inv.csv",
        tuple(
            InvoiceLine(i + 2, d, s, z, q, a)
            for i, ((d, s, z), (q, a)) in enumerate(sorted(lines.items()))
        ),
    )


def exact_invoice() -> dict[tuple[str, str, str], tuple[int, int]]:
    cells: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows()[:7]:
        day = datetime.fromtimestamp(r.started_at_s, BERLIN).date().isoformat()
        zone = "eu" if r.visited_plmn else "home"
        cells[(day, r.service, zone)][0] += r.units
        cells[(day, r.service, zone)][1] += r.wholesale
    return {k: (v[0], v[1]) for k, v in cells.items()}


@pytest.fixture
def mno(wholesale: SettlementCatalog) -> HostMno:
    found = wholesale.mno("telco-de")
    assert found is not None
    return found


async def test_a_clean_month(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog
) -> None:
    await usage_store.store_batch(rows())
    period = await settle_store.open_period(mno, MONTH, "alice", 1000.0)
    assert period.state is PeriodState.OPEN
    with pytest.raises(SettlementError, match="already open"):
        await settle_store.open_period(mno, MONTH, "alice", 1000.0)
    with pytest.raises(TransitionError, match="state open cannot reconcile"):
        await settle_store.reconcile(mno, MONTH, tenants, "alice", 1001.0)
    await settle_store.import_invoice(mno, MONTH, invoice_of(exact_invoice()), "alice", 1002.0)
    result = await settle_store.reconcile(mno, MONTH, tenants, "bob", 1003.0)
    assert result.records == 7
    assert result.identity.balanced
    assert result.identity.allocated == {"acme": 58_000, "globex": 80_000}
    assert result.identity.invoice_total == 138_000
    assert result.summary == []
    identity = await settle_store.approve(mno.id, MONTH, "carol", 1004.0)
    assert identity.balanced
    closed = await settle_store.close_period(mno.id, MONTH, "carol", 1005.0)
    assert closed.state is PeriodState.CLOSED
    history = await settle_store.transitions(closed.id)
    assert [(h[2], h[3], h[4]) for h in history] == [
        ("open", "open", "alice"),
        ("invoice_imported", "import_invoice", "alice"),
        ("reconciled", "reconcile", "bob"),
        ("approved", "approve", "carol"),
        ("closed", "close", "carol"),
    ]


async def test_discrepancies_disputes_and_the_identity(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog
) -> None:
    await usage_store.store_batch(rows())
    cells = exact_invoice()
    cells[("2026-01-03", "voice", "home")] = (600, 120_000)  # ours 480 s / 96_000: quantity
    cells[("2026-01-05", "sms", "home")] = (2, 30_000)  # ours 2 / 20_000: price
    cells[("2026-01-07", "sms", "eu")] = (1, 50_000)  # nothing of ours: missing ours
    del cells[("2026-01-04", "data", "eu")]  # ours 2_000: missing theirs
    await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, invoice_of(cells), "ops", 2.0)
    result = await settle_store.reconcile(mno, MONTH, tenants, "ops", 3.0)
    ident = result.identity
    assert ident.balanced, ident.describe()
    assert ident.unallocated == 50_000
    assert ident.disputed == 24_000 + 10_000 - 2_000
    kinds = {(o, k): (n, total) for o, _lvl, k, _over, n, total in result.summary}
    # the voice cell is shared: its 24_000 split by our amounts (36_000 acme, 60_000 globex)
    assert kinds[("acme", "quantity_mismatch")] == (1, 9_000)
    assert kinds[("globex", "quantity_mismatch")] == (1, 15_000)
    assert kinds[("globex", "price_mismatch")] == (1, 10_000)
    assert kinds[("acme", "missing_theirs")] == (1, -2_000)
    assert kinds[("", "missing_ours")] == (1, 50_000)
    created = await settle_store.raise_disputes(mno.id, MONTH, "ops", 4.0)
    assert [(o, k, n, c) for _id, o, k, n, c in created] == [
        ("", "missing_ours", 1, 50_000),
        ("acme", "quantity_mismatch", 1, 9_000),
        ("globex", "price_mismatch", 1, 10_000),
        ("globex", "quantity_mismatch", 1, 15_000),
    ]
    first = created[0][0]
    with pytest.raises(TransitionError):
        await settle_store.dispute(first, DisputeEvent.ACCEPT, "ops", 5.0)
    assert await settle_store.dispute(first, DisputeEvent.SEND, "ops", 5.0) is DisputeState.SENT
    with pytest.raises(SettlementError, match="between 0 and the claimed"):
        await settle_store.dispute(first, DisputeEvent.ACCEPT, "ops", 6.0, accepted=60_000)
    state = await settle_store.dispute(first, DisputeEvent.ACCEPT, "mno", 6.0, accepted=40_000)
    assert state is DisputeState.ACCEPTED
    evidence = await settle_store.dispute_evidence(first)
    assert len(evidence) == 1 and evidence[0][-1] == "inv.csv:5"
    identity = await settle_store.approve(mno.id, MONTH, "ops", 7.0)
    assert identity.balanced


async def test_approval_refused_when_records_changed_and_late_records_go_next(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog
) -> None:
    await usage_store.store_batch(rows())
    await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, invoice_of(exact_invoice()), "ops", 2.0)
    await settle_store.reconcile(mno, MONTH, tenants, "ops", 3.0)
    await settle_store.approve(mno.id, MONTH, "ops", 4.0)
    await settle_store.close_period(mno.id, MONTH, "ops", 5.0)
    # January usage that reaches the store after January closed: settled in February
    late = usage("acme", 7, "voice", at(20), 60, 12_000)
    february = usage("globex", 2, "sms", at(2, month=2), 1, 10_000)
    await usage_store.store_batch([late, february])
    feb_mno = "2026-02"
    await settle_store.open_period(mno, feb_mno, "ops", 6.0)
    feb_invoice = {
        ("2026-02-01", "sms", "home"): (1, 10_000),  # the row of rows() on Feb 1st
        ("2026-02-02", "sms", "home"): (1, 10_000),
    }
    await settle_store.import_invoice(mno, feb_mno, invoice_of(feb_invoice), "ops", 7.0)
    result = await settle_store.reconcile(mno, feb_mno, tenants, "ops", 8.0)
    assert result.records == 3
    assert result.identity.allocated == {"acme": 22_000, "globex": 10_000}
    # the late record is a January cell the February invoice does not have
    kinds = {(o, k): (n, total) for o, _l, k, _over, n, total in result.summary}
    assert kinds == {("acme", "missing_theirs"): (1, -12_000)}
    # January is untouched
    january = await settle_store.period(mno.id, MONTH)
    assert january.identity is not None and january.identity.allocated["acme"] == 58_000
    # a record arriving now (after February's reconciliation) changes nothing there ...
    await usage_store.store_batch([usage("acme", 8, "voice", at(21, month=2), 60, 12_000)])
    identity = await settle_store.approve(mno.id, feb_mno, "ops", 9.0)
    assert identity.balanced


async def test_approve_refuses_an_unbalanced_period(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog,
    store_url: str,
) -> None:  # fmt: skip
    import psycopg

    await usage_store.store_batch(rows())
    await settle_store.open_period(mno, MONTH, "ops", 1.0)
    await settle_store.import_invoice(mno, MONTH, invoice_of(exact_invoice()), "ops", 2.0)
    await settle_store.reconcile(mno, MONTH, tenants, "ops", 3.0)
    # tamper with a stored figure: the identity no longer holds
    async with await psycopg.AsyncConnection.connect(store_url, autocommit=True) as conn:
        await conn.execute("UPDATE settlement_invoice_lines SET amount = amount + 1 WHERE line = 2")
    with pytest.raises(NotBalancedError, match="does not add up"):
        await settle_store.approve(mno.id, MONTH, "ops", 4.0)
