"""``POST /api/v1/tenants/{tenant}/subscribers/{subscriber}/plan``: a subscriber's plan change
through the operator API, the same change as ``ocs account change-plan`` (``ocs.plan_change``),
audited like every other write (actor: the API key)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Router, post
from litestar.params import Parameter

from balance.ledger import new_op_id
from balance.products import AlreadyOnPlan
from balance.records import AccountSummary, OpResult, RecordContext
from ocs.api.auth import scope_guard
from ocs.api.errors import ERRORS, FieldError
from ocs.api.models import AccountView
from ocs.api.operator import Tenant_, _op_id, _resolver, _state, _tenant, _write
from ocs.charging.notifications import publish_notice
from ocs.plan_change import change_subscriber_plan
from ocs.products import ProductRefused
from ocs.subscriber_directory import PLAN_NOTICE
from ocs.subscriber_lookup import Target


class PlanChange(msgspec.Struct, forbid_unknown_fields=True):
    plan: str  # one of the tenant's plans
    at: Literal["now", "next-cycle"] = "now"


@post(
    "/subscribers/{subscriber:str}/plan",
    responses=ERRORS,
    opt={"role": "operate"},
    summary="Change the subscriber's plan, now or at its next renewal (Idempotency-Key)",
)
async def change_plan(
    request: Request[Any, Any, Any],
    tenant: Tenant_,
    subscriber: str,
    data: PlanChange,
    idempotency_key: Annotated[
        str | None, Parameter(header="Idempotency-Key", required=False)
    ] = None,
) -> AccountView:
    state = _state(request)
    info = await _tenant(state, tenant)
    op_id = _op_id(idempotency_key) or new_op_id()
    resolver = await _resolver(state)

    async def change(ledger: Any, target: Target, actor: str) -> OpResult:
        ref = resolver.by_msisdn(target.subscriber) if resolver is not None else None
        try:
            result = await change_subscriber_plan(
                ledger,
                info,
                target.subscriber,
                catalog_plan=ref.plan if ref is not None and ref.tenant == tenant else "",
                to_plan=data.plan,
                at_next_cycle=data.at == "next-cycle",
                actor=f"api:{actor}",
                now_s=int(state.clock()),
                op_id=op_id,
                context=RecordContext(source="admin", msisdn=target.subscriber, plan=data.plan),
            )
        except ProductRefused as exc:
            raise FieldError("plan", str(exc)) from exc
        except AlreadyOnPlan:
            # The state asked for is the state already: answered like a replay.
            account = await ledger.query(target.subscriber)
            summary = AccountSummary(
                account.balance, account.held_money, account.state_code, account.credit_limit
            )
            return OpResult(summary, replayed=True)
        if not result.replayed and data.at == "now":
            await publish_notice(state.admin, tenant, target.subscriber, PLAN_NOTICE)
        return result

    return await _write(request, tenant, subscriber, "subscriber.plan", change)


# The operator router's path and guard (the tenant scope of the key), for this one resource.
router = Router(
    path="/api/v1/tenants/{tenant:str}",
    route_handlers=[change_plan],
    guards=[scope_guard],
    tags=["operator"],
)
