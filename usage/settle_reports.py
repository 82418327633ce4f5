"""Settlement reports from the store: an MVNO's statement (read on that tenant's own database
role, so row-level security keeps every sibling's rows out of it) and the portfolio summary
(read on the portfolio role)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import msgspec
import psycopg
from psycopg import sql

from settlement.errors import SettlementError
from settlement.model import Contract, SettlementCatalog
from settlement.periods import PeriodState
from settlement.settle import MvnoSettlement, settle_mvno
from settlement.statement import DisputeLine, MnoSection, StatementView, UsageLine
from usage import settle_sql as q
from usage.settle_rows import identity_of, records_call, with_records
from usage.settle_store import SettlementStore
from usage.store import PORTFOLIO_ROLE, check_tenant, tenant_role

_ORDER = list(PeriodState)


def _union(calls: list[sql.Composed]) -> sql.Composed:
    """The records of several periods as one relation (for distinct subscribers)."""
    return sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT tenant, subscriber FROM {}").format(call) for call in calls
    )


def rejected_amount(state: str, claimed: int, accepted: int | None) -> int:
    """What a dispute leaves standing against us once the MNO has answered."""
    if state == "rejected":
        return claimed
    if state in ("accepted", "credited"):
        return claimed - (claimed if accepted is None else accepted)
    return 0


async def statement_view(
    store: SettlementStore,
    tenant: str,
    month: str,
    contract: Contract,
    catalog: SettlementCatalog,
    issued_at: str,
) -> StatementView:
    """The tenant's statement for ``month``: every figure read as ``ocs_t_<tenant>``."""
    role = tenant_role(check_tenant(tenant))
    sections: list[MnoSection] = []
    try:
        async with store.as_role(role) as conn:
            periods = await (await conn.execute(q.TENANT_PERIODS, (month,))).fetchall()
            calls = [records_call(facts) for facts in periods]
            for facts, call in zip(periods, calls, strict=True):
                mno_id, state = facts[1], facts[2]
                usage = await (await conn.execute(with_records(q.TENANT_USAGE, call))).fetchall()
                if not usage:
                    continue
                mno = catalog.mno(mno_id)
                sections.append(
                    MnoSection(
                        mno_id,
                        mno.name if mno is not None else mno_id,
                        state,
                        tuple(
                            UsageLine(s, u, int(qty), int(n), int(a)) for s, u, n, qty, a in usage
                        ),
                    )
                )
            active_row = (
                await (await conn.execute(with_records(q.TENANT_ACTIVE, _union(calls)))).fetchone()
                if calls
                else None
            )
            rows = await (await conn.execute(q.TENANT_DISPUTES, (month,))).fetchall()
    except psycopg.errors.InvalidParameterValue as exc:  # SET ROLE to a role that is not there
        raise SettlementError(f"tenant {tenant}: no usage stored for it ({exc})") from None
    disputes = tuple(
        DisputeLine(int(i), m, k, int(n), int(c), s, None if a is None else int(a))
        for i, m, k, n, c, s, a in rows
    )
    quantities: dict[str, int] = defaultdict(int)
    wholesale: dict[str, int] = {}
    for section in sections:
        wholesale[section.mno] = section.wholesale
        for line in section.lines:
            quantities[line.service] += line.quantity
    figures = settle_mvno(
        contract,
        month,
        wholesale,
        dict(quantities),
        int(active_row[0]) if active_row else 0,
        sum(rejected_amount(d.state, d.claimed, d.accepted) for d in disputes),
    )
    return StatementView(
        tenant=tenant,
        month=month,
        currency=contract.currency,
        issued_at=issued_at,
        margin_ppm=contract.margin_ppm,
        platform_fee_each=contract.platform_fee,
        minimum_commitment=contract.minimum_commitment,
        sections=tuple(sections),
        settlement=figures,
        disputes=disputes,
    )


async def record_statement(store: SettlementStore, view: StatementView) -> None:
    """Keep the issued figures (the portfolio summary reads them) and the whole view (the
    operator API renders the issued statement from it, on the tenant's own role)."""
    async with store.as_role(q.SETTLEMENT_ROLE) as conn:
        await conn.execute(
            q.UPSERT_STATEMENT,
            (
                view.tenant,
                view.month,
                view.issued_at,
                view.settlement.amount_due,
                view.currency,
                msgspec.json.encode(view.settlement).decode(),
                msgspec.json.encode(view).decode(),
            ),
        )


class MnoLine(msgspec.Struct, frozen=True):
    mno: str
    state: str
    currency: str
    invoice_total: int
    credits: int  # accepted disputes
    open_claims: int  # disputes not answered yet
    allocated: int
    unallocated: int
    disputed: int
    tolerated: int
    balanced: bool

    @property
    def payable(self) -> int:
        return self.invoice_total - self.credits


class OperatorLine(msgspec.Struct, frozen=True):
    tenant: str
    status: str  # the least advanced state of its periods this month
    statement_issued: bool
    figures: MvnoSettlement

    @property
    def margin(self) -> int:
        """The aggregator's revenue from it: margin, markups, fees, shortfall."""
        return self.figures.aggregator_revenue


class PortfolioSummary(msgspec.Struct, frozen=True):
    month: str
    mnos: tuple[MnoLine, ...]
    operators: tuple[OperatorLine, ...]

    @property
    def exposure(self) -> int:
        """What the aggregator owes the host MNOs for the month (invoices less credits)."""
        return sum(m.payable for m in self.mnos)

    @property
    def covered(self) -> int:
        """The part of it the MVNOs pay back as wholesale (their allocations)."""
        return sum(m.allocated for m in self.mnos)

    @property
    def at_risk(self) -> int:
        return self.exposure - self.covered


async def portfolio_summary(
    store: SettlementStore, month: str, catalog: SettlementCatalog
) -> PortfolioSummary:
    async with store.as_role(PORTFOLIO_ROLE) as conn:
        periods = await (await conn.execute(q.PORTFOLIO_PERIODS, (month,))).fetchall()
        credits = {
            m: (int(c), int(o))
            for m, c, o in await (await conn.execute(q.PORTFOLIO_CREDITS, (month,))).fetchall()
        }
        allocations = await (await conn.execute(q.PORTFOLIO_ALLOCATIONS, (month,))).fetchall()
        facts = await (await conn.execute(q.PORTFOLIO_PERIOD_FACTS, (month,))).fetchall()
        active: dict[str, int] = {}
        if facts:
            union = _union([records_call(f) for f in facts])
            found = await (await conn.execute(with_records(q.PORTFOLIO_ACTIVE, union))).fetchall()
            active = {str(t): int(n) for t, n in found}
        rejected = dict(await (await conn.execute(q.PORTFOLIO_REJECTED, (month,))).fetchall())
        issued = {
            t
            for t, _due, _f in await (
                await conn.execute(q.PORTFOLIO_STATEMENTS, (month,))
            ).fetchall()
        }
    mnos: list[MnoLine] = []
    for _pid, mno_id, state, currency, identity_raw in periods:
        identity = identity_of(identity_raw)
        credit, claims = credits.get(mno_id, (0, 0))
        if identity is None:
            mnos.append(MnoLine(mno_id, state, currency, 0, credit, claims, 0, 0, 0, 0, False))
            continue
        mnos.append(
            MnoLine(
                mno_id, state, currency, identity.invoice_total, credit, claims,
                identity.allocated_total, identity.unallocated, identity.disputed,
                identity.tolerated, identity.balanced,
            )
        )  # fmt: skip
    per_tenant: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"wholesale": defaultdict(int), "quantity": defaultdict(int), "states": set()}
    )
    for tenant, mno_id, state, service, _records, quantity, amount in allocations:
        slot = per_tenant[tenant]
        slot["wholesale"][mno_id] += int(amount)
        slot["quantity"][service] += int(quantity)
        slot["states"].add(state)
    operators: list[OperatorLine] = []
    for tenant in sorted(per_tenant):
        contract = catalog.contract(tenant)
        if contract is None:
            continue  # usage without a contract: visible per MNO, not settled here
        slot = per_tenant[tenant]
        figures = settle_mvno(
            contract,
            month,
            dict(slot["wholesale"]),
            dict(slot["quantity"]),
            int(active.get(tenant, 0)),
            int(rejected.get(tenant, 0)),
        )
        status = min(slot["states"], key=lambda s: _ORDER.index(PeriodState(s)))
        operators.append(OperatorLine(tenant, status, tenant in issued, figures))
    return PortfolioSummary(month, tuple(mnos), tuple(operators))
