"""Portfolio (MVNA) resources: every tenant's status, aggregates and alerts, read on the store's
``ocs_portfolio`` role. A tenant key never reaches these routes (the guard), and the portfolio
role is the only one whose row-level security shows every tenant's rows."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from litestar import Request, Router, get

from ocs.api import sql as q
from ocs.api.auth import scope_guard
from ocs.api.errors import ERRORS, FieldError
from ocs.api.models import (
    Aggregates,
    Alert,
    Alerts,
    ServiceAggregate,
    TenantAggregate,
    TenantStatus,
)
from ocs.api.state import ApiState

DEFAULT_PERIOD = timedelta(days=30)
PERIOD_MAX = timedelta(days=366)
# An export more than this behind the newest stored record of its tenant raises an alert.
EXPORT_LAG_WARN = timedelta(minutes=5)
EXPORT_LAG_CRITICAL = timedelta(hours=1)


def _state(request: Request[Any, Any, Any]) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def period(
    state: ApiState, start: datetime | None, end: datetime | None
) -> tuple[datetime, datetime]:
    """``[start, end)``, defaulting to the last 30 days; at most a year."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise FieldError(name, "a time zone is required (e.g. 2026-12-01T00:00:00Z)")
    end = end or state.now() + timedelta(seconds=1)
    start = start or end - DEFAULT_PERIOD
    if start >= end:
        raise FieldError("start", "must be before end")
    if end - start > PERIOD_MAX:
        raise FieldError("start", f"a period is at most {PERIOD_MAX.days} days")
    return start, end


@get(
    "/tenants",
    responses=ERRORS,
    opt={"role": "read", "portfolio": True},
    summary="Every tenant with its status",
)
async def tenants(request: Request[Any, Any, Any]) -> list[TenantStatus]:
    state = _state(request)
    catalog = await state.catalog()
    stored = {t.tenant for t in await state.store.tenants()}
    known = {t.id: t.currency for t in (catalog.tenants if catalog else ())}
    return [
        TenantStatus(
            tenant=t, currency=known.get(t, ""), in_catalog=t in known, usage_stored=t in stored
        )
        for t in sorted(known.keys() | stored)
    ]


async def aggregates_of(state: ApiState, start: datetime, end: datetime) -> Aggregates:
    params = {"start": start, "end": end}
    async with state.store.as_portfolio() as conn:
        rows = await (await conn.execute(q.AGGREGATES, params)).fetchall()
        subscribers = dict(await (await conn.execute(q.TENANT_SUBSCRIBERS, params)).fetchall())
    by_tenant: dict[tuple[str, str], TenantAggregate] = {}
    for tenant, service, currency, records, subs, units, retail, wholesale, leakage in rows:
        agg = by_tenant.get((tenant, currency))
        if agg is None:
            agg = TenantAggregate(
                tenant, currency, 0, int(subscribers.get(tenant, 0)), 0, 0, 0, 0, []
            )
            by_tenant[(tenant, currency)] = agg
        retail, wholesale, leakage = int(retail), int(wholesale), int(leakage)
        agg.services.append(
            ServiceAggregate(
                service,
                int(records),
                int(subs),
                int(units),
                retail,
                wholesale,
                retail - wholesale,
                leakage,
            )
        )
        agg.records += int(records)
        agg.retail_micro += retail
        agg.wholesale_micro += wholesale
        agg.margin_micro += retail - wholesale
        agg.leakage_micro += leakage
    return Aggregates(start, end, list(by_tenant.values()))


@get(
    "/aggregates",
    responses=ERRORS,
    opt={"role": "read", "portfolio": True},
    summary="Per tenant and service: subscribers, usage, retail, wholesale, margin, leakage",
)
async def aggregates(
    request: Request[Any, Any, Any], start: datetime | None = None, end: datetime | None = None
) -> Aggregates:
    state = _state(request)
    return await aggregates_of(state, *period(state, start, end))


async def alerts_of(state: ApiState, start: datetime, end: datetime) -> Alerts:
    params = {"start": start, "end": end}
    out: list[Alert] = []
    async with state.store.as_portfolio() as conn:
        for tenant, count, money in await (
            await conn.execute(q.NEGATIVE_MARGIN, params)
        ).fetchall():
            out.append(
                Alert(
                    "negative_margin",
                    tenant,
                    "critical",
                    f"{count} records priced below wholesale (loss {int(money)} micro)",
                    int(count),
                )
            )
        for tenant, count, money in await (await conn.execute(q.LEAKAGE, params)).fetchall():
            out.append(
                Alert(
                    "leakage",
                    tenant,
                    "warning",
                    f"{count} records with leakage ({int(money)} micro)",
                    int(money),
                )
            )
        latest = await (await conn.execute(q.LATEST_STORED)).fetchall()
    now = state.now()
    for tenant, stored_at in latest:
        if stored_at is None:
            continue
        lag = now - stored_at
        if lag > EXPORT_LAG_WARN:
            severity = "critical" if lag > EXPORT_LAG_CRITICAL else "warning"
            out.append(
                Alert(
                    "export_lag",
                    tenant,
                    severity,
                    f"nothing exported for {int(lag.total_seconds())} s",
                    int(lag.total_seconds()),
                )
            )
    return Alerts(start, end, out)


@get(
    "/alerts",
    responses=ERRORS,
    opt={"role": "read", "portfolio": True},
    summary="Export lag, leakage, records priced below wholesale",
)
async def alerts(
    request: Request[Any, Any, Any], start: datetime | None = None, end: datetime | None = None
) -> Alerts:
    state = _state(request)
    return await alerts_of(state, *period(state, start, end))


router = Router(
    path="/api/v1/portfolio",
    route_handlers=[tenants, aggregates, alerts],
    guards=[scope_guard],
    tags=["portfolio"],
)
