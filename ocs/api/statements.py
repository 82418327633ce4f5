"""Settlement over the API: an operator's issued statements (list, and one as JSON, HTML, CSV or
PDF) and the portfolio's settlement status per host MNO and per operator.

A statement is what ``ocs settle statement`` issued: its whole view is kept with it
(``settlement_statements.view``), so the files served here are the ones issued, rendered by
``settlement.statement`` from that view. The operator's reads run on the tenant's own store
role, where row-level security shows that tenant's statements only; the portfolio's on
``ocs_portfolio``."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from ocs.api import settlement_sql as q
from ocs.api.auth import scope_guard
from ocs.api.errors import ERRORS, Conflict, FieldError, NotFound
from ocs.api.operator import Tenant_, _state, _tenant
from ocs.api.state import ApiState
from settlement.periods import PeriodState
from settlement.settle import MvnoSettlement
from settlement.statement import StatementView, render_csv, render_html, render_pdf
from usage.settle_rows import identity_of

MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
STATEMENTS_MAX = 120  # ten years of monthly statements
# PDFs rendered at once per process (each is a few hundred ms of CPU); more requests wait.
PDF_RENDERS_MAX = 2
PDF_SLOTS = "statement_pdf_slots"  # the semaphore's name in the application's state
PERIODS_MAX = 500
FORMATS = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "pdf": "application/pdf",
}
# Accept header media types (first match wins, in the client's order) → format.
ACCEPTED = {
    "application/json": "json",
    "text/html": "html",
    "text/csv": "csv",
    "application/pdf": "pdf",
}
# The statement's files, as the OpenAPI document declares them beside the JSON.
FILE_MEDIA_TYPES = {
    "text/html": {"type": "string"},
    "text/csv": {"type": "string"},
    "application/pdf": {"type": "string", "format": "binary"},
}
_STATE_ORDER = list(PeriodState)

Month_ = Annotated[str, Parameter(description="the statement's month, YYYY-MM")]


class StatementSummary(msgspec.Struct):
    """One issued statement: its figures in micro-units and where its files are."""

    month: str
    issued_at: datetime
    host_mnos: list[str]
    currency: str
    wholesale_micro: int
    margin_micro: int  # the contract's margin and per-service markups
    platform_fee_micro: int
    commitment_shortfall_micro: int
    rejected_disputes_micro: int
    amount_due_micro: int
    active_subscribers: int
    # format → URL (html, csv, pdf); empty for a statement issued before views were kept
    files: dict[str, str]


class StatementDocument(msgspec.Struct):
    """A statement as JSON: the summary and the whole view it was rendered from."""

    summary: StatementSummary
    statement: StatementView | None


class Statements(msgspec.Struct):
    tenant: str
    statements: list[StatementSummary]


class PeriodStatus(msgspec.Struct):
    """A host MNO's month: its state and the identity of its last reconciliation
    (invoice = allocated + unallocated + disputed + tolerated)."""

    host_mno: str
    month: str
    state: str
    currency: str
    reconciled: bool  # False: no reconciliation yet, the figures are 0
    invoice_total_micro: int
    allocated_micro: int
    unallocated_micro: int
    disputed_micro: int
    tolerated_micro: int
    residual_micro: int
    balanced: bool


class OperatorStatus(msgspec.Struct):
    """An operator's month: the least advanced state of its host MNOs' periods, its allocated
    wholesale, and whether its statement was issued (and for how much)."""

    tenant: str
    month: str
    host_mnos: list[str]
    period_state: str
    allocated_micro: int
    statement_issued: bool
    issued_at: datetime | None
    amount_due_micro: int | None
    currency: str | None


class SettlementStatus(msgspec.Struct):
    month: str | None
    periods: list[PeriodStatus]
    operators: list[OperatorStatus]


def check_month(month: str) -> str:
    if not MONTH.fullmatch(month):
        raise FieldError("month", f"expected YYYY-MM (e.g. 2026-01), got {month!r}")
    return month


def _figures(raw: Any) -> MvnoSettlement:
    data = raw if isinstance(raw, dict | list) else msgspec.json.decode(raw)
    return msgspec.convert(data, MvnoSettlement)


def _view(raw: Any) -> StatementView | None:
    if raw is None:
        return None
    data = raw if isinstance(raw, dict) else msgspec.json.decode(raw)
    return msgspec.convert(data, StatementView)


def _summary(tenant: str, row: tuple[Any, ...]) -> tuple[StatementSummary, StatementView | None]:
    month, issued_at, amount_due, currency, figures_raw, view_raw = row
    figures, view = _figures(figures_raw), _view(view_raw)
    base = f"/api/v1/tenants/{tenant}/statements/{month}"
    files = {} if view is None else {f: f"{base}?format={f}" for f in ("html", "csv", "pdf")}
    summary = StatementSummary(
        month=month,
        issued_at=issued_at,
        host_mnos=sorted(figures.wholesale_by_mno),
        currency=currency,
        wholesale_micro=figures.wholesale,
        margin_micro=figures.margin + sum(figures.markups.values()),
        platform_fee_micro=figures.platform_fee,
        commitment_shortfall_micro=figures.commitment_shortfall,
        rejected_disputes_micro=figures.rejected_disputes,
        amount_due_micro=int(amount_due),
        active_subscribers=figures.active_subscribers,
        files=files,
    )
    return summary, view


async def statements_of(state: ApiState, tenant: str) -> list[StatementSummary]:
    """The tenant's issued statements, newest month first (read on its own role)."""
    async with await state.tenant_store(tenant) as conn:
        rows = await (
            await conn.execute(q.TENANT_STATEMENTS, {"tenant": tenant, "limit": STATEMENTS_MAX})
        ).fetchall()
    return [_summary(tenant, row)[0] for row in rows]


def _pdf_slots(request: Request[Any, Any, Any]) -> asyncio.Semaphore:
    """The process's PDF renderers (one semaphore per application, made on first use)."""
    app_state = request.app.state
    slots = app_state.get(PDF_SLOTS)
    if not isinstance(slots, asyncio.Semaphore):
        slots = asyncio.Semaphore(PDF_RENDERS_MAX)
        app_state[PDF_SLOTS] = slots
    return slots


def negotiate(format_: str | None, accept: str) -> str:
    """The ``format`` parameter, else the first Accept media type we serve, else JSON."""
    if format_ is not None:
        if format_ not in FORMATS:
            raise FieldError("format", f"expected one of {', '.join(FORMATS)}, got {format_!r}")
        return format_
    for part in accept.split(","):
        found = ACCEPTED.get(part.split(";", 1)[0].strip().lower())
        if found is not None:
            return found
    return "json"


@get(
    "/statements",
    responses=ERRORS,
    opt={"role": "read"},
    summary="The tenant's issued settlement statements, newest month first",
)
async def list_statements(request: Request[Any, Any, Any], tenant: Tenant_) -> Statements:
    state = _state(request)
    await _tenant(state, tenant)
    return Statements(tenant, await statements_of(state, tenant))


@get(
    "/statements/{month:str}",
    responses={
        **ERRORS,
        200: ResponseSpec(
            data_container=StatementDocument,
            description="JSON here; text/html, text/csv or application/pdf with format=html, "
            "csv or pdf (or the Accept header)",
        ),
    },
    opt={"role": "read", "media_types": FILE_MEDIA_TYPES},
    summary="One issued statement as JSON, HTML, CSV or PDF (format, or the Accept header)",
)
async def get_statement(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    month: Month_,
    format: Annotated[
        str | None, Parameter(description="json, html, csv or pdf (default: Accept, else json)")
    ] = None,
) -> Response[Any]:
    state = _state(request)
    await _tenant(state, tenant)
    check_month(month)
    wanted = negotiate(format, request.headers.get("accept", ""))
    async with await state.tenant_store(tenant) as conn:
        row = await (
            await conn.execute(q.TENANT_STATEMENT, {"tenant": tenant, "month": month})
        ).fetchone()
    if row is None:
        raise NotFound(f"no statement of tenant {tenant!r} was issued for {month}")
    summary, view = _summary(tenant, row)
    if wanted == "json":
        return Response(StatementDocument(summary, view), media_type=FORMATS["json"])
    if view is None:
        raise Conflict(
            f"the statement of {tenant!r} for {month} was issued before statements were kept "
            f"whole; issue it again (ocs settle statement {tenant} {month})"
        )
    html = render_html(view)
    content: str | bytes
    if wanted == "html":
        content = html
    elif wanted == "csv":
        content = render_csv(view)
    else:
        async with _pdf_slots(request):
            content = await asyncio.to_thread(render_pdf, html)  # CPU-bound: off the loop
    disposition = "inline" if wanted == "html" else "attachment"
    return Response(
        content,
        media_type=FORMATS[wanted],
        headers={"Content-Disposition": f'{disposition}; filename="{tenant}-{month}.{wanted}"'},
    )


def _period_status(row: tuple[Any, ...]) -> PeriodStatus:
    host_mno, month, period_state, currency, identity_raw = row
    identity = identity_of(identity_raw)
    if identity is None:
        return PeriodStatus(host_mno, month, period_state, currency, False, 0, 0, 0, 0, 0, 0,
                            False)  # fmt: skip
    return PeriodStatus(
        host_mno, month, period_state, currency, True, identity.invoice_total,
        identity.allocated_total, identity.unallocated, identity.disputed, identity.tolerated,
        identity.residual, identity.balanced,
    )  # fmt: skip


async def settlement_status(state: ApiState, month: str | None) -> SettlementStatus:
    """Every host MNO's period (of ``month``, else the newest ones) and every operator's
    standing in those months, read as ``ocs_portfolio``."""
    async with state.store.as_portfolio() as conn:
        periods = [
            _period_status(row)
            for row in await (
                await conn.execute(q.PERIOD_STATUS, {"month": month, "limit": PERIODS_MAX})
            ).fetchall()
        ]
        months = sorted({p.month for p in periods}, reverse=True)
        allocated = await (await conn.execute(q.OPERATOR_PERIODS, {"months": months})).fetchall()
        issued = {
            (tenant, m): (at, int(due), currency)
            for tenant, m, at, due, currency in await (
                await conn.execute(q.OPERATOR_STATEMENTS, {"months": months})
            ).fetchall()
        }
    operators = []
    for tenant, m, mnos, states, wholesale in allocated:
        at, due, currency = issued.get((tenant, m), (None, None, None))
        least = min(states, key=lambda s: _STATE_ORDER.index(PeriodState(s)))
        operators.append(
            OperatorStatus(
                tenant, m, list(mnos), least, int(wholesale), at is not None, at, due, currency
            )
        )
    return SettlementStatus(month, periods, operators)


@get(
    "/settlement",
    responses=ERRORS,
    opt={"role": "read", "portfolio": True},
    summary="Settlement status per host MNO and month, and per operator (statement issued, due)",
)
async def portfolio_settlement(
    request: Request[Any, Any, Any],
    month: Annotated[str | None, Parameter(description="YYYY-MM (default: newest months)")] = None,
) -> SettlementStatus:
    return await settlement_status(_state(request), None if month is None else check_month(month))


operator_router = Router(
    path="/api/v1/tenants/{tenant:str}",
    route_handlers=[list_statements, get_statement],
    guards=[scope_guard],
    tags=["operator"],
)
portfolio_router = Router(
    path="/api/v1/portfolio",
    route_handlers=[portfolio_settlement],
    guards=[scope_guard],
    tags=["portfolio"],
)
