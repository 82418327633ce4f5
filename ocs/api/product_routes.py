"""Buying and renewing an add-on through the API (TMF 654's "buy a bundle"): the add-on's fee
is charged from the balance in the same ledger call that grants its buckets (``grant.lua``
through ``ocs.products``), so a balance that cannot pay the fee gets nothing (402, naming the
balance and the fee). Both are idempotent on the ``Idempotency-Key`` header.

Why the idempotency key is scoped to the add-on and the action (the ledger's op id is
``api:<key>:<action>:<add-on>``): an activation's buckets expire relative to the second it runs,
so a retry one second later has different content; a retry is therefore recognised by its op id
having been applied (and answered as a replay), never by comparing content.

Renewing an add-on starts a fresh validity now and carries what is left of the live one into
the new buckets (nothing is forfeited by renewing early); it needs a live activation to renew.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from litestar import Request, Router, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from balance import keys
from balance.errors import InsufficientCredit, OperationConflict
from balance.products import Carry, grant_product
from balance.records import Account, AccountSummary, OpResult
from ocs.api.auth import scope_guard
from ocs.api.errors import ERRORS, Conflict, FieldError, PaymentRequired
from ocs.api.models import AccountView, AddonPurchase, ErrorBody
from ocs.api.operator import Tenant_, _account, _op_id, _state, _tenant, _write
from ocs.products import ProductRefused, activation_tag, addon_of, bundle_specs, buy_addon
from ocs.subscriber_lookup import Target
from tariffs.display import format_amount
from tariffs.model import Bundle, Tenant

ADDON_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
PRODUCT_ERRORS = {
    **ERRORS,
    402: ResponseSpec(
        data_container=ErrorBody,
        description="the balance cannot pay the add-on's fee: nothing was charged or granted",
    ),
}
IdempotencyKey = Annotated[str | None, Parameter(header="Idempotency-Key", required=False)]


def _addon(info: Tenant, addon: str) -> Bundle:
    try:
        return addon_of(info, addon)
    except ProductRefused as exc:
        raise FieldError("addon", str(exc)) from None


def _unpaid(info: Tenant, bundle: Bundle, account: Account | None, what: str) -> PaymentRequired:
    balance = 0 if account is None else account.balance - account.held_money
    room = 0 if account is None else account.credit_limit
    return PaymentRequired(
        f"the available balance {format_amount(balance)} {info.currency}"
        + (f" (credit limit {format_amount(room)})" if room else "")
        + f" cannot pay the {what} fee of {format_amount(bundle.fee)} {info.currency} for "
        f"add-on {bundle.id!r}: nothing was charged or granted"
    )


def _op(idempotency_key: str | None, verb: str, addon: str) -> str:
    given = _op_id(idempotency_key)
    return f"{given}:{verb}:{addon}" if given else f"api:{verb}:{secrets.token_hex(12)}"


async def _applied(ledger: Any, subscriber: str, op_id: str) -> OpResult | None:
    """The replay answer when ``op_id`` was applied already (a retried request), else None."""
    prefix = keys.subscriber_prefix(ledger.tenant, subscriber)
    if not await ledger.client.exists(keys.op_key(prefix, op_id)):
        return None
    account = await ledger.query(subscriber)
    summary = AccountSummary(
        account.balance, account.held_money, account.state_code, account.credit_limit
    )
    return OpResult(summary, True)


async def _once(ledger: Any, subscriber: str, op_id: str, apply: Any) -> OpResult:
    """``apply()`` unless ``op_id`` was applied already; a retry racing its original (the
    ledger's OperationConflict on the same op id) is a replay too."""
    replay = await _applied(ledger, subscriber, op_id)
    if replay is not None:
        return replay
    try:
        result: OpResult = await apply()
    except OperationConflict:
        replay = await _applied(ledger, subscriber, op_id)
        if replay is None:
            raise
        return replay
    return result


@post(
    "/subscribers/{subscriber:str}/addons",
    responses=PRODUCT_ERRORS,
    opt={"role": "operate"},
    summary="Buy an add-on: its fee from the balance and its buckets, in one ledger call",
)
async def buy(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str,
    data: AddonPurchase,
    idempotency_key: IdempotencyKey = None,
) -> AccountView:
    state = _state(request)
    info = await _tenant(state, tenant)
    bundle = _addon(info, data.addon)
    op_id = _op(idempotency_key, "buy", bundle.id)

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        async def apply() -> OpResult:
            now_s = int(state.clock())
            return await buy_addon(ledger, info, target.subscriber, bundle.id, now_s=now_s,
                                   op_id=op_id)  # fmt: skip

        try:
            return await _once(ledger, target.subscriber, op_id, apply)
        except InsufficientCredit:
            raise _unpaid(info, bundle, await _account(state, target), "purchase") from None

    # A live session's client gets a RAR: there is new credit to grant from.
    return await _write(request, tenant, subscriber, "subscriber.addon_buy", change,
                        notice="topup")  # fmt: skip


@post(
    "/subscribers/{subscriber:str}/addons/{addon:str}/renew",
    responses=PRODUCT_ERRORS,
    opt={"role": "operate"},
    summary="Renew a live add-on: fee charged, validity from now, what is left carried over",
)
async def renew(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str,
    addon: Annotated[str, Parameter(pattern=ADDON_ID)],
    idempotency_key: IdempotencyKey = None,
) -> AccountView:
    state = _state(request)
    info = await _tenant(state, tenant)
    bundle = _addon(info, addon)
    op_id = _op(idempotency_key, "renew", bundle.id)

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        account = await _account(state, target)

        async def apply() -> OpResult:
            now_s = int(state.clock())
            kinds = {spec.kind for spec in bundle_specs(bundle, now_s, "")}
            # Carry all that is left of the live activation (its remainder is the cap).
            left = dict.fromkeys(kinds, 0)
            buckets = () if account is None else account.buckets
            live = [b for b in buckets if b.kind in kinds and b.live(now_s)]
            for b in live:
                left[b.kind] += b.remaining
            if not live:
                raise Conflict(
                    f"subscriber {target.subscriber} has no live {bundle.id!r} to renew: buy "
                    f"it (POST .../subscribers/{target.subscriber}/addons)"
                )
            specs = bundle_specs(
                bundle, now_s, activation_tag(op_id), carry=Carry.ROLLOVER, caps=left
            )
            return await grant_product(
                ledger, target.subscriber, product=f"addon:{bundle.id}", fee=bundle.fee,
                buckets=specs, now_s=now_s, op_id=op_id,
            )  # fmt: skip

        try:
            return await _once(ledger, target.subscriber, op_id, apply)
        except InsufficientCredit:
            raise _unpaid(info, bundle, account, "renewal") from None

    return await _write(request, tenant, subscriber, "subscriber.addon_renew", change,
                        notice="topup")  # fmt: skip


router = Router(
    path="/api/v1/tenants/{tenant:str}",
    route_handlers=[buy, renew],
    guards=[scope_guard],
    tags=["operator"],
)
