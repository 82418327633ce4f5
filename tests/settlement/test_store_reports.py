"""Statements read on the tenant's own role contain nothing of a sibling; the portfolio
summary sees every operator."""

from __future__ import annotations

import psycopg
import pytest

from settlement.errors import SettlementError
from settlement.invoice import Invoice, InvoiceLine
from settlement.model import Contract, HostMno, SettlementCatalog
from settlement.statement import render_csv, render_html, render_pdf
from tariffs.model import Catalog
from tests.settlement.conftest import at
from tests.settlement.usage_rows import usage
from usage import settle_sql as q
from usage.settle_reports import portfolio_summary, record_statement, statement_view
from usage.settle_store import SettlementStore
from usage.store import UsageStore, tenant_role

MONTH = "2026-01"
# globex's figures are odd amounts that cannot appear in acme's statement by chance
ROWS = [
    usage("acme", 1, "voice", at(3), 120, 24_000),
    usage("acme", 2, "data", at(4), 10 * 1048576, 20_000),
    usage("globex", 1, "voice", at(3), 300, 61_357),
    usage("globex", 2, "sms", at(5), 1, 13_579),
]
INVOICE = Invoice(
    "inv.csv",
    (
        InvoiceLine(2, "2026-01-03", "voice", "home", 420, 85_357 + 77_777),  # + overcharge
        InvoiceLine(3, "2026-01-04", "data", "home", 10 * 1048576, 20_000),
        InvoiceLine(4, "2026-01-05", "sms", "home", 1, 13_579),
        InvoiceLine(5, "2026-01-09", "sms", "world", 3, 150_000),  # nobody's
    ),
)


@pytest.fixture
def mno(wholesale: SettlementCatalog) -> HostMno:
    found = wholesale.mno("telco-de")
    assert found is not None
    return found


async def _month(
    usage_store: UsageStore, settle: SettlementStore, mno: HostMno, tenants: Catalog
) -> None:
    await usage_store.store_batch(ROWS)
    await settle.open_period(mno, MONTH, "ops", 1.0)
    await settle.import_invoice(mno, MONTH, INVOICE, "ops", 2.0)
    await settle.reconcile(mno, MONTH, tenants, "ops", 3.0)
    await settle.raise_disputes(mno.id, MONTH, "ops", 4.0)


async def test_a_statement_has_nothing_of_a_sibling(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog,
    wholesale: SettlementCatalog,
) -> None:  # fmt: skip
    await _month(usage_store, settle_store, mno, tenants)
    contract = wholesale.contract("acme")
    assert contract is not None
    view = await statement_view(
        settle_store, "acme", MONTH, contract, wholesale, "2026-02-01T00:00:00+00:00"
    )
    assert view.settlement.wholesale == 44_000
    assert view.settlement.active_subscribers == 2
    html, csv_text = render_html(view), render_csv(view)
    for text in (html, csv_text):
        assert "globex" not in text.lower()
        for figure in ("0.061357", "61,357", "61357", "0.013579", "13579", "0.150000", "0.15 "):
            assert figure not in text, figure
        assert "acme" in text
    # acme's share of the shared voice cell's overcharge is a dispute of its own
    assert [d.kind for d in view.disputes] == ["price_mismatch"]
    assert render_pdf(html).startswith(b"%PDF-")


async def test_the_tenant_role_sees_its_own_settlement_rows_only(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog
) -> None:
    await _month(usage_store, settle_store, mno, tenants)
    async with settle_store.as_role(tenant_role("acme")) as conn:
        owners = await (
            await conn.execute("SELECT DISTINCT owner FROM settlement_disputes")
        ).fetchall()
        tenants_seen = await (
            await conn.execute("SELECT DISTINCT tenant FROM settlement_allocations")
        ).fetchall()
        records = await (
            await conn.execute(
                "SELECT DISTINCT tenant FROM settlement_period_records("
                "(SELECT id FROM settlement_period_states WHERE month = %s))",
                (MONTH,),
            )
        ).fetchall()
    assert owners == [("acme",)]
    assert tenants_seen == [("acme",)]
    assert records == [("acme",)]
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with settle_store.as_role(tenant_role("acme")) as conn:
            await conn.execute("SELECT * FROM settlement_periods")
    with pytest.raises(SettlementError, match="no usage stored"):
        await statement_view(
            settle_store,
            "initech",
            MONTH,
            Contract("initech", "EUR", ("telco-de",), 0, (), 0, 0),
            SettlementCatalog((), ()),
            "2026-02-01T00:00:00+00:00",
        )


async def test_portfolio_summary(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog,
    wholesale: SettlementCatalog,
) -> None:  # fmt: skip
    await _month(usage_store, settle_store, mno, tenants)
    summary = await portfolio_summary(settle_store, MONTH, wholesale)
    (line,) = summary.mnos
    assert line.invoice_total == 85_357 + 77_777 + 20_000 + 13_579 + 150_000
    assert line.allocated == 44_000 + 61_357 + 13_579
    assert line.unallocated == 150_000
    assert line.balanced
    assert line.open_claims == 77_777 + 150_000
    assert summary.exposure == line.invoice_total
    assert summary.at_risk == 77_777 + 150_000
    ops = {o.tenant: o for o in summary.operators}
    assert set(ops) == {"acme", "globex"}
    assert ops["acme"].figures.wholesale == 44_000
    assert ops["globex"].status == "disputed"
    contract = wholesale.contract("acme")
    assert contract is not None
    view = await statement_view(
        settle_store, "acme", MONTH, contract, wholesale, "2026-02-01T00:00:00+00:00"
    )
    await record_statement(settle_store, view)
    again = await portfolio_summary(settle_store, MONTH, wholesale)
    assert {o.tenant: o.statement_issued for o in again.operators} == {
        "acme": True,
        "globex": False,
    }
    assert {o.tenant: o.figures for o in again.operators}["acme"] == view.settlement
    assert q.SETTLEMENT_ROLE == "ocs_settlement"


async def test_a_rejected_dispute_passes_through_per_contract(
    usage_store: UsageStore, settle_store: SettlementStore, mno: HostMno, tenants: Catalog,
    wholesale: SettlementCatalog,
) -> None:  # fmt: skip
    from settlement.disputes import DisputeEvent

    await _month(usage_store, settle_store, mno, tenants)
    disputes = {
        (o, k): (i, c) for i, o, k, _n, c, _a, _s in await settle_store.disputes(mno.id, MONTH)
    }
    globex_id, globex_claim = disputes[("globex", "price_mismatch")]
    acme_id, _acme_claim = disputes[("acme", "price_mismatch")]
    for dispute_id in (globex_id, acme_id):
        await settle_store.dispute(dispute_id, DisputeEvent.SEND, "ops", 5.0)
        await settle_store.dispute(dispute_id, DisputeEvent.REJECT, "mno", 6.0)
    views = {}
    for tenant in ("acme", "globex"):
        contract = wholesale.contract(tenant)
        assert contract is not None
        views[tenant] = await statement_view(
            settle_store, tenant, MONTH, contract, wholesale, "2026-02-01T00:00:00+00:00"
        )
    # globex's contract passes rejected disputes through, acme's absorbs them
    assert views["globex"].settlement.rejected_disputes == globex_claim
    assert views["acme"].settlement.rejected_disputes == 0
    s = views["globex"].settlement
    assert s.amount_due == (
        s.wholesale + s.margin + sum(s.markups.values()) + s.platform_fee
        + s.commitment_shortfall + globex_claim
    )  # fmt: skip
