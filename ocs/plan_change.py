"""A subscriber's plan change: the catalog's plans and the tenant's rules turned into one
``change_plan.lua`` call (``balance.products.change_plan``).

Immediately: the new plan's cycle starts now; its fee is charged and the old plan's unused days
credited by the tenant's ``plan_change.proration`` (``tariffs.proration``); the old plan's
buckets are kept, expired or moved into the new plan's by ``plan_change.buckets``; the new
plan's bundles are granted. At the next cycle: the change is noted on the old plan's renewal
state and the renewal of that cycle (``ocs.renewal``) charges and grants the new plan instead.
Either way the change is recorded (a ``plan`` record, a ``plan_changed`` event) with its actor.
"""

from __future__ import annotations

from balance.ledger import Context, Ledger
from balance.products import (
    BucketRule,
    BucketSpec,
    PlanChange,
    change_plan,
    current_plan,
    renewal_member,
)
from balance.records import OpResult
from ocs.products import ProductRefused, activation_tag, bundle_specs
from tariffs.cycles import next_start
from tariffs.model import Plan, Tenant, bucket_kind
from tariffs.proration import change_fees, new_cycle_start

RULES = {"keep": BucketRule.KEEP, "expire": BucketRule.EXPIRE, "replace": BucketRule.REPLACE}
DAY_S = 86_400
LONGEST_CYCLE_S = 32 * DAY_S  # a cycle is at most a month: where to start looking back


def plan_product(plan_id: str) -> str:
    return f"plan:{plan_id}"


def plan_of(tenant: Tenant, plan_id: str) -> Plan:
    plan = tenant.plan(plan_id)
    if plan is None:
        offered = ", ".join(p.id for p in tenant.plans) or "none"
        raise ProductRefused(f"tenant {tenant.id!r} has no plan {plan_id!r} (plans: {offered})")
    return plan


def cycle_before(plan: Plan, anchor_s: int, due_s: int, timezone: str) -> int:
    """The start of the cycle that ends at ``due_s`` (the anchor for the first cycle)."""
    assert plan.cycle is not None
    at = max(anchor_s, due_s - LONGEST_CYCLE_S)
    while True:
        following = next_start(plan.cycle, anchor_s, at, timezone)
        if following >= due_s:
            return at
        at = following


def plan_kinds(tenant: Tenant, plan: Plan | None) -> tuple[str, ...]:
    """The bucket kinds of a plan's included bundles (what the bucket rule applies to)."""
    if plan is None:
        return ()
    kinds: list[str] = []
    for bundle_id in plan.bundles:
        bundle = tenant.bundle(bundle_id)
        if bundle is not None:
            kinds.extend(bucket_kind(bundle.id, a.name) for a in bundle.allowances)
    return tuple(kinds)


def plan_buckets(tenant: Tenant, plan: Plan, now_s: int, tag: str, ends: int) -> list[BucketSpec]:
    """The buckets of a plan's bundles granted at ``now_s`` (valid until ``ends``; 0: each
    bundle's own validity)."""
    specs: list[BucketSpec] = []
    for bundle_id in plan.bundles:
        bundle = tenant.bundle(bundle_id)
        if bundle is not None:
            specs.extend(bundle_specs(bundle, now_s, tag, expires_at_s=ends or None))
    return specs


async def change_subscriber_plan(
    ledger: Ledger,
    tenant: Tenant,
    subscriber: str,
    *,
    catalog_plan: str,
    to_plan: str,
    at_next_cycle: bool,
    actor: str,
    now_s: int,
    op_id: str,
    context: Context = None,
) -> OpResult:
    """Move ``subscriber`` (on ``catalog_plan`` unless changed since) to ``to_plan``.

    ProductRefused when the catalog has no such plan or a change at the next cycle is asked of
    a plan that does not recur; the ledger's refusals (InvalidRequest: on that plan already;
    InsufficientCredit 4012; AccountBlocked 4010: an unpaid renewal) pass through."""
    new = plan_of(tenant, to_plan)
    current = await current_plan(ledger, subscriber, catalog_plan)
    old = tenant.plan(current.plan) if current.plan else None
    recurring = current.cycle_start > 0
    old_member = renewal_member(subscriber, plan_product(current.plan)) if recurring else ""
    if at_next_cycle:
        if not recurring:
            raise ProductRefused(
                f"plan {current.plan or '(none)'!r} does not renew: change it now instead"
            )
        change = PlanChange(
            from_plan=current.plan,
            to_plan=new.id,
            actor=actor,
            at_cycle=True,
            old_member=old_member,
            old_cycle_start=current.cycle_start,
        )
        return await change_plan(
            ledger, subscriber, change, now_s=now_s, op_id=op_id, context=context
        )
    # A change to the current plan is refused by the script, after its replay check: a retry
    # of a change that was applied finds the new plan current and must still replay.
    new_next = 0
    new_cycle: tuple[int, int] | None = None
    if new.cycle is not None:
        new_next = next_start(new.cycle, now_s, now_s, tenant.timezone)
        new_cycle = (new_cycle_start(new.cycle, now_s, tenant.timezone), new_next)
    old_cycle: tuple[int, int] | None = None
    if recurring and old is not None and old.cycle is not None:
        due = current.cycle_start
        old_cycle = (cycle_before(old, current.anchor_s, due, tenant.timezone), due)
    fees = change_fees(
        tenant.plan_change.proration,
        now_s=now_s,
        timezone=tenant.timezone,
        new_fee=new.fee,
        new_cycle=new_cycle,
        old_fee=old.fee if old is not None else 0,
        old_cycle=old_cycle,
    )
    change = PlanChange(
        from_plan=current.plan,
        to_plan=new.id,
        actor=actor,
        old_member=old_member,
        old_cycle_start=current.cycle_start,
        charge=fees.charge,
        credit=fees.credit,
        rule=RULES[tenant.plan_change.buckets],
        old_kinds=plan_kinds(tenant, old),
        buckets=tuple(plan_buckets(tenant, new, now_s, activation_tag(op_id), new_next)),
        new_member=renewal_member(subscriber, plan_product(new.id)) if new.cycle else "",
        new_next_start=new_next,
        new_anchor=now_s,
    )
    return await change_plan(ledger, subscriber, change, now_s=now_s, op_id=op_id, context=context)
