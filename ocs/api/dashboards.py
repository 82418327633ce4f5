"""The two dashboards, server-rendered HTML with inline SVG charts (no script, no CDN).

Logging in stores the key in an HttpOnly, SameSite=Strict cookie; every page then goes through
the same scope guard as the API (``ocs.api.auth.scope_guard``): the portfolio pages need a
portfolio key, ``/dashboard/tenants/{tenant}`` a key of that tenant, and the data is read on the
tenant's own store role and Redis user. Editing the URL to a sibling tenant is a 403 page."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from html import escape
from typing import Annotated, Any

from litestar import MediaType, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body
from litestar.response import Redirect

from ocs.api import operator, portfolio
from ocs.api import sql as q
from ocs.api.auth import SESSION_COOKIE, scope_guard
from ocs.api.charts import bar_chart, line_chart
from ocs.api.errors import Conflict, FieldError, NotFound
from ocs.api.state import ApiState
from ocs.key_format import KEY_PATTERN
from tariffs.display import format_money

PERIOD = timedelta(days=30)
TOP_SUBSCRIBERS = 25
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1f2d3d;color:#fff;padding:10px 24px;display:flex;gap:24px;align-items:center}
header a{color:#cfe0ff} main{padding:16px 24px;max-width:1100px}
h1{font-size:20px;margin:0} h2{font-size:16px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;min-width:50%}
th,td{padding:5px 10px;border-bottom:1px solid #e3e6ea;text-align:left}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e3e6ea;border-radius:6px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:20px} .chart{background:#fff;border:1px solid #e3e6ea;margin:6px 0}
.chart text{font-size:11px;fill:#444} .chart .t{font-size:13px;font-weight:bold} .v{fill:#666}
.critical{color:#b00020;font-weight:bold} .warning{color:#a05a00} .empty{color:#777}
form.inline{display:inline-block;margin:4px 12px 4px 0} input{padding:4px}
.neg{color:#b00020}
"""


class LoginRequired(Exception):
    """A dashboard page without a usable session: back to the login form."""


def login_redirect(_: Request[Any, Any, Any], __: LoginRequired) -> Response[Any]:
    return Redirect("/dashboard/login")


def refused_page(_: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    return Response(
        page("Not allowed", f"<p class='critical'>{escape(exc.detail)}</p>"
             "<p><a href='/dashboard'>back to your dashboard</a></p>"),
        status_code=403, media_type=MediaType.HTML,
    )  # fmt: skip


async def dashboard_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    try:
        await scope_guard(connection, handler)
    except NotAuthorizedException:
        raise LoginRequired from None


def page(title: str, body: str, nav: str = "") -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><header><h1>{escape(title)}</h1>{nav}"
        "<a href='/dashboard/logout'>log out</a></header>"
        f"<main>{body}</main></body></html>"
    )


def _state(request: Request[Any, Any, Any]) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _money(micro: int, currency: str) -> str:
    text = escape(format_money(micro, currency))
    return f"<span class='neg'>{text}</span>" if micro < 0 else text


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(
        f"<th class='n'>{escape(h)}</th>" if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>" + "".join(
            f"<td class='n'>{c}</td>" if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        ) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


# -- login ------------------------------------------------------------------------------------


@get("/login", media_type=MediaType.HTML, include_in_schema=False)
async def login_form() -> str:
    return page(
        "mvna-ocs dashboard",
        "<form method='post' action='/dashboard/login'><p>API key (from "
        "<code>ocs apikey create</code>):</p><input name='key' size='70' type='password' "
        "autocomplete='off'> <button type='submit'>log in</button></form>",
    )


@post("/login", media_type=MediaType.HTML, include_in_schema=False, status_code=303)
async def login(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    key_text = data.get("key", "").strip()
    key = await _state(request).key(key_text) if KEY_PATTERN.fullmatch(key_text) else None
    if key is None:
        return Response(
            page("mvna-ocs dashboard", "<p class='critical'>unknown, revoked or expired key</p>"
                 "<p><a href='/dashboard/login'>try again</a></p>"),
            status_code=401, media_type=MediaType.HTML,
        )  # fmt: skip
    target = "/dashboard/portfolio" if key.scope == "portfolio" else (
        f"/dashboard/tenants/{key.tenants[0]}"
    )  # fmt: skip
    response: Response[Any] = Redirect(target)
    response.set_cookie(
        SESSION_COOKIE, key_text, httponly=True, samesite="strict", path="/",
        max_age=_state(request).config.api.session_s,
    )  # fmt: skip
    return response


@get("/logout", include_in_schema=False)
async def logout() -> Response[Any]:
    response: Response[Any] = Redirect("/dashboard/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@get("/", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    key_text = request.cookies.get(SESSION_COOKIE, "")
    key = await _state(request).key(key_text) if key_text else None
    if key is None:
        return Redirect("/dashboard/login")
    if key.scope == "portfolio":
        return Redirect("/dashboard/portfolio")
    return Redirect(f"/dashboard/tenants/{key.tenants[0]}")


# -- portfolio ---------------------------------------------------------------------------------


@get("/portfolio", media_type=MediaType.HTML, include_in_schema=False,
     opt={"role": "read", "portfolio": True}, guards=[dashboard_guard])  # fmt: skip
async def portfolio_page(request: Request[Any, Any, Any]) -> str:
    state = _state(request)
    start, end = portfolio.period(state, None, None)
    aggs = await portfolio.aggregates_of(state, start, end)
    alerts = await portfolio.alerts_of(state, start, end)
    statuses = await portfolio.tenants.fn(request)
    async with state.store.as_portfolio() as conn:
        daily = await (
            await conn.execute(q.PORTFOLIO_DAILY, {"start": start, "end": end})
        ).fetchall()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in aggs.tenants:
        t = totals[a.currency]
        t[0] += a.retail_micro
        t[1] += a.wholesale_micro
        t[2] += a.margin_micro
        t[3] += a.leakage_micro
    cards = (
        "".join(
            f"<div class='card'>retail {escape(c)}<b>{_money(v[0], c)}</b></div>"
            f"<div class='card'>wholesale {escape(c)}<b>{_money(v[1], c)}</b></div>"
            f"<div class='card'>margin {escape(c)}<b>{_money(v[2], c)}</b></div>"
            f"<div class='card'>leakage {escape(c)}<b>{_money(v[3], c)}</b></div>"
            for c, v in sorted(totals.items())
        )
        or "<p class='empty'>no usage stored in this period</p>"
    )
    cards += f"<div class='card'>operators<b>{len(statuses)}</b></div>"
    rows = [
        [escape(a.tenant), escape(a.currency), str(a.subscribers), str(a.records),
         _money(a.retail_micro, a.currency), _money(a.wholesale_micro, a.currency),
         _money(a.margin_micro, a.currency), _money(a.leakage_micro, a.currency)]
        for a in aggs.tenants
    ]  # fmt: skip
    margin_chart = bar_chart(
        "margin per operator (currency units)",
        [(a.tenant, a.margin_micro / 1e6) for a in aggs.tenants],
    )
    series: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for day, tenant, retail, _wholesale in daily:
        series[tenant].append((day, int(retail) / 1e6))
    alert_rows = [
        [f"<span class='{a.severity}'>{escape(a.severity)}</span>", escape(a.kind),
         escape(a.tenant), escape(a.message)]
        for a in alerts.alerts
    ]  # fmt: skip
    status_rows = [
        [escape(s.tenant), escape(s.currency), "yes" if s.in_catalog else "no",
         "yes" if s.usage_stored else "no"]
        for s in statuses
    ]  # fmt: skip
    body = (
        f"<p>period {start:%Y-%m-%d} to {end:%Y-%m-%d} (UTC)</p><div class='cards'>{cards}</div>"
        "<h2>Margin per operator</h2>"
        + _table(["operator", "currency", "subscribers", "records", "retail", "wholesale",
                  "margin", "leakage"], rows, {2, 3, 4, 5, 6, 7})
        + margin_chart
        + "<h2>Traffic over time</h2>"
        + line_chart("retail per day and operator", series, unit="")
        + "<h2>Alerts</h2>"
        + (_table(["severity", "kind", "operator", "what"], alert_rows, set())
           if alert_rows else "<p class='empty'>no alerts</p>")
        + "<h2>Operators</h2>"
        + _table(["operator", "currency", "in catalog", "usage stored"], status_rows, set())
        + "<h2>Settlement</h2><p class='empty'>no settlement package on this deployment: "
        "statements are not available</p>"
    )  # fmt: skip
    return page("Portfolio", body)


# -- operator -----------------------------------------------------------------------------------


def _nav(tenant: str) -> str:
    t = escape(tenant)
    return f"<a href='/dashboard/tenants/{t}'>overview</a>"


@get("/tenants/{tenant:str}", media_type=MediaType.HTML, include_in_schema=False,
     opt={"role": "read"}, guards=[dashboard_guard])  # fmt: skip
async def operator_page(request: Request[Any, Any, Any], tenant: str) -> str:
    state = _state(request)
    info = await operator._tenant(state, tenant)
    end = state.now() + timedelta(seconds=1)
    start = end - PERIOD
    params = {"tenant": tenant, "start": start, "end": end, "limit": TOP_SUBSCRIBERS}
    async with await state.tenant_store(tenant) as conn:
        daily = await (await conn.execute(q.TENANT_DAILY, params)).fetchall()
        top = await (await conn.execute(q.TOP_SUBSCRIBERS, params)).fetchall()
    ledger = await state.ledger(tenant)
    rows = []
    for subscriber, records, retail in top:
        try:
            account = await ledger.query(subscriber)
            balance, status = _money(account.balance, info.currency), account.state.value
        except Exception:  # an account deleted since: its usage stays listed
            balance, status = "-", "gone"
        link = f"<a href='/dashboard/tenants/{escape(tenant)}/subscribers/{escape(subscriber)}'>"
        rows.append([f"{link}{escape(subscriber)}</a>", escape(status), balance, str(records),
                     _money(int(retail), info.currency)])  # fmt: skip
    series: dict[str, list[tuple[str, float]]] = defaultdict(list)
    by_service: dict[str, int] = defaultdict(int)
    for day, service, retail, _units in daily:
        series[service].append((day, int(retail) / 1e6))
        by_service[service] += int(retail)
    t = escape(tenant)
    body = (
        f"<p>currency {escape(info.currency)}, period {start:%Y-%m-%d} to {end:%Y-%m-%d}</p>"
        f"<form class='inline' method='get' action='/dashboard/tenants/{t}/find'>"
        "<input name='subscriber' placeholder='MSISDN or IMSI'> <button>find</button></form>"
        "<h2>Subscribers (most revenue in the period)</h2>"
        + (_table(["subscriber", "state", "balance", "records", "retail"], rows, {2, 3, 4})
           if rows else "<p class='empty'>no usage in this period</p>")
        + "<h2>Usage</h2>"
        + line_chart(f"retail per day and service ({info.currency})", series)
        + bar_chart(f"retail per service ({info.currency})",
                    [(s, v / 1e6) for s, v in sorted(by_service.items())])
        + "<h2>Statements</h2><p class='empty'>no settlement package on this deployment: "
        "statements are not available</p>"
    )  # fmt: skip
    return page(f"Operator {tenant}", body, _nav(tenant))


@get("/tenants/{tenant:str}/find", include_in_schema=False, opt={"role": "read"},
     guards=[dashboard_guard])  # fmt: skip
async def find(tenant: str, subscriber: str = "") -> Response[Any]:
    return Redirect(f"/dashboard/tenants/{tenant}/subscribers/{subscriber.strip() or '-'}")


@get("/tenants/{tenant:str}/subscribers/{subscriber:str}", media_type=MediaType.HTML,
     include_in_schema=False, opt={"role": "read"}, guards=[dashboard_guard])  # fmt: skip
async def subscriber_page(
    request: Request[Any, Any, Any], tenant: str, subscriber: str, done: str = ""
) -> Response[Any]:
    try:
        view = await operator.get_subscriber.fn(request, tenant, subscriber)
    except NotFound as exc:
        return Response(page(f"Operator {tenant}", f"<p class='critical'>{escape(str(exc))}</p>",
                             _nav(tenant)), status_code=404, media_type=MediaType.HTML)  # fmt: skip
    t, s = escape(tenant), escape(view.subscriber)
    buckets = [
        [escape(b.kind), escape(b.remaining_text), str(b.priority), "live" if b.live else "expired"]
        for b in view.buckets
    ]
    action = f"/dashboard/tenants/{t}/subscribers/{s}"
    forms = (
        f"<form class='inline' method='post' action='{action}/topup'><input name='amount' "
        "placeholder='5.00' size='8'> <button>top up</button></form>"
        f"<form class='inline' method='post' action='{action}/"
        f"{'unblock' if view.state == 'blocked' else 'block'}'><button>"
        f"{'unblock' if view.state == 'blocked' else 'block'}</button></form>"
    )
    body = (
        (f"<p class='warning'>{escape(done)}</p>" if done else "")
        + _table(["", ""], [["subscriber", s], ["IMSI", escape(view.imsi or "-")],
                            ["state", escape(view.state)], ["balance", escape(view.balance_text)],
                            ["open reservations", str(view.open_reservations)]], set())
        + "<h2>Buckets</h2>"
        + (_table(["bucket", "remaining", "priority", "status"], buckets, {1, 2})
           if buckets else "<p class='empty'>none</p>")
        + "<h2>Actions</h2>" + forms
    )  # fmt: skip
    return Response(page(f"Operator {tenant}: {view.subscriber}", body, _nav(tenant)),
                    media_type=MediaType.HTML)  # fmt: skip


@post("/tenants/{tenant:str}/subscribers/{subscriber:str}/{action:str}", include_in_schema=False,
      opt={"role": "operate"}, guards=[dashboard_guard], status_code=303)  # fmt: skip
async def subscriber_action(
    request: Request[Any, Any, Any],
    tenant: str,
    subscriber: str,
    action: str,
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """The dashboard's forms call the API's own handlers: same checks, same audit."""
    from ocs.api.models import StateChange, TopUp

    try:
        if action == "topup":
            await operator.topup.fn(request, tenant, subscriber, TopUp(data.get("amount", "")))
        elif action in ("block", "unblock"):
            route = operator.block if action == "block" else operator.unblock
            await route.fn(request, tenant, subscriber, StateChange("dashboard"))
        else:
            raise NotFound(f"no action {action!r}")
        done = f"{action}: done"
    except (FieldError, Conflict, NotFound) as exc:
        done = f"{action} refused: {exc}"
    return Redirect(
        f"/dashboard/tenants/{tenant}/subscribers/{subscriber}", query_params={"done": done}
    )


router = Router(
    path="/dashboard",
    route_handlers=[
        login_form,
        login,
        logout,
        home,
        portfolio_page,
        operator_page,
        find,
        subscriber_page,
        subscriber_action,
    ],
    exception_handlers={
        LoginRequired: login_redirect,
        PermissionDeniedException: refused_page,
    },
)
