"""Operator (MVNO) resources, scoped to one tenant, modelled on TMF 637/638 (subscribers as
product inventory), 654 (prepay balance: top-up, adjust) and 635 (usage).

Every handler works on the tenant's own Redis ACL user (``ApiState.ledger``) and store role
(``ApiState.tenant_store``): the guard's check is the first layer, not the only one."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, delete, get, post
from litestar.params import Parameter

from balance.errors import UnknownAccount
from balance.records import Account, AccountState, OpResult
from ocs.account_view import Context, account_json
from ocs.api import audit
from ocs.api import sql as q
from ocs.api.auth import principal, scope_guard
from ocs.api.errors import ERRORS, Conflict, FieldError, NotFound
from ocs.api.models import (
    AccountView,
    Adjust,
    AuditPage,
    BucketView,
    ServiceInfo,
    SimSwap,
    StateChange,
    SubscriberCreate,
    TenantView,
    TopUp,
    UsagePage,
    UsageRecord,
)
from ocs.api.state import ApiState
from ocs.charging.durable_requests import publish_account_notice
from ocs.commands.account import OP_ID, UsageError, parse_amount
from ocs.subscriber_directory import (
    DirectoryEntry,
    ImsiTaken,
    put_entry,
    read_entry,
    remove_entry,
    reserve_imsi,
)
from ocs.subscriber_lookup import Target
from tariffs.display import format_amount
from tariffs.model import Tenant
from tariffs.subscribers import Resolver, normalise_digits

REASON_MAX = 200
MSISDN = re.compile(r"[1-9]\d{5,14}")
IMSI = re.compile(r"\d{6,15}")
CURSOR = re.compile(r"(\d+(?:\.\d+)?)~([A-Za-z0-9._:/-]{1,200})")
TIME_MIN = datetime(1, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(9999, 12, 31, tzinfo=UTC)
Tenant_ = Annotated[
    str, Parameter(description="tenant (MVNO) id", pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
]


def _state(request: Request[Any, Any, Any]) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def _source(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def _context(info: Tenant | None) -> Context:
    if info is None:
        return Context()
    return Context(
        info.currency,
        info.timezone,
        {s.name: s.unit for s in info.services},
        {group: s.unit for s in info.services for group in s.rating_groups},
    )


async def _tenant(state: ApiState, tenant: str) -> Tenant:
    catalog = await state.catalog()
    info = None if catalog is None else catalog.tenant(tenant)
    if info is None:
        raise NotFound(f"unknown tenant {tenant!r}")
    return info


async def _target(state: ApiState, tenant: str, subscriber: str, *, create: bool = False) -> Target:
    """The account a path or body names: a catalog subscriber of the tenant, or a dynamic one
    (``ocs.subscriber_directory``). Another tenant's number is "unknown" here (404), or "not
    available" on create (409), never naming that tenant."""
    info = await _tenant(state, tenant)
    resolver = state.resolver
    ref = None if resolver is None else (
        resolver.by_msisdn(subscriber) or resolver.by_imsi(subscriber)
    )  # fmt: skip
    if ref is not None:
        if ref.tenant == tenant:
            return Target(tenant, ref.subscriber_id, info, imsi=ref.imsi, in_catalog=True)
        if create:
            raise Conflict(f"number {subscriber!r} is not available to tenant {tenant!r}")
        raise NotFound(f"unknown subscriber {subscriber!r} in tenant {tenant!r}")
    digits = normalise_digits(subscriber)
    if digits is None or not MSISDN.fullmatch(digits):
        if create:
            raise FieldError(
                "subscriber", f"{subscriber!r} is not an E.164 number (e.g. +4917012345678)"
            )
        raise NotFound(f"unknown subscriber {subscriber!r} in tenant {tenant!r}")
    entry = await read_entry(state.admin, digits)
    if entry is not None and entry.tenant != tenant:
        if create:
            raise Conflict(f"number {subscriber!r} is not available to tenant {tenant!r}")
        raise NotFound(f"unknown subscriber {subscriber!r} in tenant {tenant!r}")
    return Target(tenant, digits, info, imsi=None if entry is None else entry.imsi)


def _imsi(resolver: Resolver | None, text: str) -> str:
    digits = normalise_digits(text)
    if digits is None or not IMSI.fullmatch(digits):
        raise FieldError("imsi", f"{text!r} is not an IMSI (6 to 15 digits)")
    if resolver is not None and resolver.by_imsi(digits) is not None:
        raise Conflict(f"IMSI {digits} belongs to a catalog subscriber range")
    return digits


async def _resolver(state: ApiState) -> Resolver | None:
    await state.catalog()  # refreshes the resolver with the catalog
    return state.resolver


def _amount(field: str, text: str, *, signed: bool = False) -> int:
    try:
        return parse_amount(text, signed=signed)
    except UsageError as exc:
        raise FieldError(field, str(exc)) from None


def _reason(text: str, *, required: bool = False) -> str:
    if len(text) > REASON_MAX:
        raise FieldError("reason", f"at most {REASON_MAX} characters")
    if required and not text.strip():
        raise FieldError("reason", "an adjustment needs a reason")
    return text


def _view(target: Target, account: Account, info: Tenant, replayed: bool = False) -> AccountView:
    now_s = datetime.now(UTC).timestamp()
    data = account_json(
        target.tenant, target.subscriber, account, now_s, _context(info), target.imsi
    )
    return AccountView(
        tenant=target.tenant,
        subscriber=target.subscriber,
        imsi=target.imsi,
        currency=info.currency,
        state=data["state"],
        balance_micro=account.balance,
        balance_text=data["balance_text"],
        held_micro=account.held_money,
        credit_limit_micro=account.credit_limit,
        buckets=[
            BucketView(
                id=b["id"],
                kind=b["kind"],
                unit=b["unit"],
                remaining=b["remaining"],
                remaining_text=b["remaining_text"],
                held=b["held"],
                priority=b["priority"],
                expires_at_s=b["expires_at_s"],
                live=b["live"],
            )
            for b in data["buckets"]
        ],
        open_reservations=len(data["reservations"]),
        replayed=replayed,
    )


async def _account(state: ApiState, target: Target) -> Account | None:
    ledger = await state.ledger(target.tenant)
    try:
        return await ledger.query(target.subscriber)
    except UnknownAccount:
        return None


def _op_id(key: str | None) -> str | None:
    if key is None:
        return None
    if not OP_ID.fullmatch(key):
        raise FieldError("Idempotency-Key", "1 to 128 letters, digits or ._:@/+=-")
    return f"api:{key}"


async def _write(
    request: Request[Any, Any, Any],
    tenant: str,
    subscriber: str,
    action: str,
    change: Any,
    *,
    create: bool = False,
    notice: str | None = None,
) -> AccountView:
    """Run one ledger write on the tenant's user, audit it (before and after), return after."""
    state = _state(request)
    key = await principal(request)
    info = await _tenant(state, tenant)
    target = await _target(state, tenant, subscriber, create=create)
    before = await _account(state, target)
    if before is None and not create:
        raise NotFound(f"unknown subscriber {subscriber!r} in tenant {tenant!r}")
    if before is not None and create:
        raise Conflict(f"subscriber {target.subscriber!r} of tenant {tenant!r} already exists")
    ledger = await state.ledger(tenant)
    result: OpResult | None = await change(ledger, target, key.key_id)
    if notice is not None and not (result is not None and result.replayed):
        # Durable: a server holding the session's peer sends the RAR (top-up) or ASR (block).
        await publish_account_notice(state.admin, tenant, target.subscriber, notice)
    replayed = result is not None and result.replayed
    if not target.in_catalog:  # a create or SIM swap may have changed the IMSI
        entry = await read_entry(state.admin, target.subscriber)
        target = msgspec.structs.replace(target, imsi=None if entry is None else entry.imsi)
    after = await ledger.query(target.subscriber)
    view = _view(target, after, info, replayed)
    await audit.record(
        state,
        tenant=tenant,
        actor=key.key_id,
        source=_source(request),
        action=action,
        target=target.subscriber,
        status=201 if create else 200,
        before=None if before is None else msgspec.to_builtins(_view(target, before, info)),
        after=msgspec.to_builtins(view),
    )
    return view


@get(
    "/",
    responses=ERRORS,
    opt={"role": "read"},
    summary="The tenant's settings (currency, services, limits)",
)
async def tenant_info(request: Request[Any, Any, Any], tenant: Tenant_) -> TenantView:
    info = await _tenant(_state(request), tenant)
    return TenantView(
        tenant=info.id,
        name=getattr(info, "name", info.id) or info.id,
        currency=info.currency,
        timezone=info.timezone or "UTC",
        topup_max_micro=info.topup_max,
        services=[ServiceInfo(s.name, s.unit) for s in info.services],
        addons=list(info.addons),
    )


@get(
    "/subscribers/{subscriber:str}",
    responses=ERRORS,
    opt={"role": "read"},
    summary="Balance, buckets, state",
)
async def get_subscriber(
    request: Request[Any, Any, Any], tenant: Tenant_, subscriber: str
) -> AccountView:
    state = _state(request)
    info = await _tenant(state, tenant)
    target = await _target(state, tenant, subscriber)
    account = await _account(state, target)
    if account is None:
        raise NotFound(f"unknown subscriber {subscriber!r} in tenant {tenant!r}")
    return _view(target, account, info)


@post(
    "/subscribers",
    responses=ERRORS,
    opt={"role": "operate"},
    status_code=201,
    summary="Create a subscriber (charged by Diameter and SIP within a second)",
)
async def create_subscriber(
    request: Request[Any, Any, Any], tenant: Tenant_, data: SubscriberCreate
) -> AccountView:
    state = _state(request)
    balance = _amount("balance", data.balance, signed=True)
    limit = _amount("credit_limit", data.credit_limit, signed=True)
    if limit < 0:
        raise FieldError("credit_limit", "must not be negative")
    imsi = None if data.imsi is None else _imsi(await _resolver(state), data.imsi)

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        if target.in_catalog:
            if imsi is not None and imsi != target.imsi:
                raise FieldError("imsi", "the catalog range fixes this subscriber's IMSI")
        else:
            try:
                await put_entry(state.admin, target.subscriber, DirectoryEntry(tenant, imsi))
            except ImsiTaken as exc:
                raise Conflict(str(exc)) from None
        return await ledger.provision_account(  # type: ignore[no-any-return]
            target.subscriber,
            balance=balance,
            credit_limit=limit,
            held=target.held,
            now_s=state.clock(),
            op_id=f"api:{actor}:create:{target.subscriber}",
        )

    return await _write(request, tenant, data.subscriber, "subscriber.create", change, create=True)


@post(
    "/subscribers/{subscriber:str}/sim",
    responses=ERRORS,
    opt={"role": "operate"},
    summary="SIM swap: the subscriber's new IMSI (a sim_swapped event for the host MNO)",
)
async def sim_swap(
    request: Request[Any, Any, Any], tenant: Tenant_, subscriber: str, data: SimSwap
) -> AccountView:
    state = _state(request)
    imsi = _imsi(await _resolver(state), data.imsi)
    op_key = _op_id(request.headers.get("Idempotency-Key"))

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        if target.in_catalog:
            raise FieldError(
                "imsi",
                "a catalog range subscriber's IMSI is fixed by the range: change the catalog",
            )
        # The IMSI is claimed first (conflicts answered before any change), then the ledger
        # records the swap and its event in one call, then the directory routes the new IMSI.
        # A failure after the ledger call is completed by the same request again (same op id:
        # replayed, no second event).
        previous = target.imsi or ""
        try:
            await reserve_imsi(state.admin, imsi, target.subscriber)
        except ImsiTaken as exc:
            raise Conflict(str(exc)) from None
        result: OpResult = await ledger.sim_swap(
            target.subscriber,
            imsi,
            previous_imsi=previous,
            hold=target.held,
            now_s=state.clock(),
            op_id=op_key or f"api:{actor}:sim:{target.subscriber}:{previous}:{imsi}",
        )
        await put_entry(state.admin, target.subscriber, DirectoryEntry(tenant, imsi))
        return result

    return await _write(request, tenant, subscriber, "subscriber.sim_swap", change)


@delete(
    "/subscribers/{subscriber:str}",
    responses=ERRORS,
    opt={"role": "admin"},
    status_code=200,
    summary="Delete a dynamic subscriber (a deleted event; no grants, unreachable)",
)
async def delete_subscriber(
    request: Request[Any, Any, Any], tenant: Tenant_, subscriber: str
) -> AccountView:
    state = _state(request)
    op_key = _op_id(request.headers.get("Idempotency-Key"))

    async def change(ledger: Any, target: Target, actor: str) -> OpResult | None:
        if target.in_catalog:
            raise FieldError(
                "subscriber", "covered by the tenant's catalog: remove it there (ocs catalog load)"
            )
        result: OpResult | None
        try:
            result = await ledger.delete_account(
                target.subscriber,
                reason=f"deleted [api key {actor}]",
                now_s=state.clock(),
                op_id=op_key,
            )
        except UnknownAccount:
            # Deleted already (an earlier request stopped before the directory): finish that.
            account = await _account(state, target)
            if account is None or account.state is not AccountState.DELETED:
                raise
            result = None
        await remove_entry(state.admin, tenant, target.subscriber)
        return result

    return await _write(request, tenant, subscriber, "subscriber.delete", change, notice="block")


@post(
    "/subscribers/{subscriber:str}/topup",
    responses=ERRORS,
    opt={"role": "operate"},
    summary="Top up (idempotent with Idempotency-Key)",
)
async def topup(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str,
    data: TopUp,
    idempotency_key: Annotated[
        str | None, Parameter(header="Idempotency-Key", required=False)
    ] = None,
) -> AccountView:
    amount = _amount("amount", data.amount)
    reason = _reason(data.reason)
    op_id = _op_id(idempotency_key)
    info = await _tenant(_state(request), tenant)
    if amount > info.topup_max:
        raise FieldError(
            "amount",
            f"{format_amount(amount)} {info.currency} is more than tenant {tenant!r}'s maximum "
            f"single top-up of {format_amount(info.topup_max)} {info.currency} (topup_max)",
        )

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        # The actor rides on the ledger record's reason: the admin record names its key.
        return await ledger.topup(  # type: ignore[no-any-return]
            target.subscriber,
            amount,
            reason=f"{reason} [api key {actor}]",
            now_s=_state(request).clock(),
            op_id=op_id,
        )

    return await _write(request, tenant, subscriber, "subscriber.topup", change, notice="topup")


@post(
    "/subscribers/{subscriber:str}/adjust",
    responses=ERRORS,
    opt={"role": "admin"},
    summary="Signed correction with a reason",
)
async def adjust(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str,
    data: Adjust,
    idempotency_key: Annotated[
        str | None, Parameter(header="Idempotency-Key", required=False)
    ] = None,
) -> AccountView:
    delta = _amount("amount", data.amount, signed=True)
    reason = _reason(data.reason, required=True)
    limit = (
        None
        if data.credit_limit is None
        else _amount("credit_limit", data.credit_limit, signed=True)
    )
    if limit is not None and limit < 0:
        raise FieldError("credit_limit", "must not be negative")
    op_id = _op_id(idempotency_key)

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        return await ledger.adjust(  # type: ignore[no-any-return]
            target.subscriber,
            delta,
            reason=f"{reason} [api key {actor}]",
            credit_limit=limit,
            now_s=_state(request).clock(),
            op_id=op_id,
        )

    return await _write(request, tenant, subscriber, "subscriber.adjust", change)


def _state_route(name: str, blocked: bool) -> Any:
    async def handler(
        request: Request[Any, Any, Any], tenant: Tenant_, subscriber: str, data: StateChange
    ) -> AccountView:
        reason = _reason(data.reason)

        async def change(ledger: Any, target: Target, actor: str) -> OpResult:
            run = ledger.block if blocked else ledger.unblock
            return await run(  # type: ignore[no-any-return]
                target.subscriber,
                reason=f"{reason} [api key {actor}]".strip(),
                now_s=_state(request).clock(),
            )

        # A block makes every server holding the subscriber's sessions send ASR.
        return await _write(
            request,
            tenant,
            subscriber,
            f"subscriber.{name}",
            change,
            notice="block" if blocked else None,
        )

    handler.__name__ = name
    return post(
        f"/subscribers/{{subscriber:str}}/{name}",
        responses=ERRORS,
        opt={"role": "operate"},
        summary=f"{name.capitalize()} the subscriber",
    )(handler)


block = _state_route("block", True)
unblock = _state_route("unblock", False)


def _cursor(text: str | None) -> tuple[datetime, str]:
    if text is None:
        return TIME_MAX, "\uffff"
    match = CURSOR.fullmatch(text)
    if match is None:
        raise FieldError("cursor", "not a cursor this API returned")
    return datetime.fromtimestamp(float(match[1]), UTC), match[2]


FILTER_CHARS_MAX = 256


def _check_filter(name: str, value: str | None) -> None:
    """A filter is compared as text in PostgreSQL, which refuses a NUL character: say so (422)
    rather than fail the query."""
    if value is None:
        return
    if len(value) > FILTER_CHARS_MAX:
        raise FieldError(name, f"at most {FILTER_CHARS_MAX} characters")
    if any(ord(c) < 0x20 for c in value):
        raise FieldError(name, "control characters (such as NUL) are not allowed")


@get(
    "/usage",
    responses=ERRORS,
    opt={"role": "read"},
    summary="Usage records, newest first (keyset paging)",
)
async def usage(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str | None = None,
    kind: str | None = None,
    service: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> UsagePage:
    state = _state(request)
    await _tenant(state, tenant)
    for name, text in (("subscriber", subscriber), ("kind", kind), ("service", service)):
        _check_filter(name, text)
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise FieldError(name, "a time zone is required (e.g. 2026-12-01T00:00:00Z)")
    limit = min(limit, state.config.api.page_max)
    after_at, after_entry = _cursor(cursor)
    params = {
        "tenant": tenant,
        "start": start or TIME_MIN,
        "end": end or TIME_MAX,
        "after_at": after_at,
        "after_entry": after_entry,
        "subscriber": subscriber,
        "kind": kind,
        "service": service,
        "limit": limit,
    }
    async with await state.tenant_store(tenant) as conn:
        rows = await (await conn.execute(q.READ_USAGE, params)).fetchall()
    records = [UsageRecord(*row) for row in rows]
    next_cursor = None
    if len(records) == limit and records:
        last = records[-1]
        next_cursor = f"{last.ended_at.timestamp():.6f}~{last.entry_id}"
    return UsagePage(records, next_cursor)


@get(
    "/audit", responses=ERRORS, opt={"role": "read"}, summary="The tenant's audit log, newest first"
)
async def audit_log(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Parameter(ge=1)] = None,
) -> AuditPage:
    state = _state(request)
    await _tenant(state, tenant)
    return await audit.read(state, tenant, before, min(limit, state.config.api.page_max))


router = Router(
    path="/api/v1/tenants/{tenant:str}",
    route_handlers=[
        tenant_info,
        get_subscriber,
        create_subscriber,
        sim_swap,
        delete_subscriber,
        topup,
        adjust,
        block,
        unblock,
        usage,
        audit_log,
    ],
    guards=[scope_guard],
    tags=["operator"],
)
