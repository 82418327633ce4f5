"""Recurring renewals: the scheduler that charges each plan's fee and grants its fresh buckets
when a cycle starts.

Where the work comes from: each shard ``{t:<tenant>:<vshard>}`` has a due index (zset
``<subscriber>|<product>`` -> due second) and a state hash, written by enrolment (catalog load)
and by each renewal in the same Lua call that charges it. A pass reads, per shard, only the
members due now (``ZRANGEBYSCORE -inf now LIMIT``), so it never scans accounts.

Why it is safe with several processes and after downtime: a renewal is one ``grant.lua`` call
with op id ``renew:<subscriber>:<product>:<cycle_start>`` that applies only while the state
still says that cycle is due, and moves the schedule to the first cycle start after *now*. A
second scheduler finds it renewed (stale) or replays it; a scheduler that was down for three
cycles renews once, late, and schedules the next cycle from now.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import msgspec

from balance import keys
from balance.errors import LedgerError
from balance.ledger import Ledger
from balance.products import (
    BucketSpec,
    Carry,
    PlanChange,
    RenewOutcome,
    change_plan,
    due_key,
    enroll,
    renew_product,
    state_key,
)
from balance.records import RecordContext
from ocs.plan_change import RULES, plan_kinds, plan_product
from ocs.products import bundle_specs
from tariffs.cycles import next_start
from tariffs.model import Plan, Tenant
from tariffs.provisioning import SubscriberProvision

LedgerFor = Callable[[str], Awaitable[Ledger]]
SHARD_BATCH = 64  # shards read per pipeline round trip
DUE_PER_SHARD_MAX = 256  # members taken per shard per pass (the rest: next pass)
RENEW_CONCURRENCY = 64
_STATE = msgspec.msgpack.Decoder(list[int | str])  # see balance.products.state_key


class PassStats(msgspec.Struct):
    """What one pass did, per outcome (``unknown``: a product the catalog no longer has)."""

    due: int = 0
    applied: int = 0
    replayed: int = 0
    stale: int = 0
    unpaid: int = 0
    unknown: int = 0
    failed: int = 0  # a ledger error (e.g. no account): left due, retried next pass

    def add(self, outcome: RenewOutcome) -> None:
        name = outcome.name.lower()
        setattr(self, name, getattr(self, name) + 1)


async def enroll_provisions(
    ledger: Ledger, tenant: Tenant, provisions: Iterable[SubscriberProvision], now: int
) -> int:
    """Enrol every provisioned subscriber whose plan recurs; its first renewal is one cycle
    after ``now`` (the plan's bundles were granted at provisioning). Returns how many were new."""
    plans = {plan.id: plan for plan in tenant.plans if plan.cycle is not None}
    added = 0
    for provision in provisions:
        plan = plans.get(provision.plan)
        if plan is None or plan.cycle is None:
            continue
        first = next_start(plan.cycle, now, now, tenant.timezone)
        added += await enroll(ledger, provision.subscriber_id, plan_product(plan.id), first, now)
    return added


def renewal_specs(tenant: Tenant, plan: Plan, cycle_start: int, ends: int) -> list[BucketSpec]:
    """The buckets of one cycle of ``plan``: valid until the next cycle starts; what the
    previous cycle left expires or rolls over up to the bundle's ``rollover_cap``."""
    specs: list[BucketSpec] = []
    for bundle_id in plan.bundles:
        bundle = tenant.bundle(bundle_id)
        if bundle is None:
            continue
        carry = Carry.ROLLOVER if bundle.rollover_cap > 0 else Carry.EXPIRE
        specs.extend(
            bundle_specs(
                bundle,
                cycle_start,
                f"r{cycle_start}",
                carry=carry,
                caps={f"{bundle.id}.{a.name}": bundle.rollover_cap for a in bundle.allowances},
                expires_at_s=ends,
            )
        )
    return specs


class Renewer:
    """One pass over a tenant's due renewals (``run_tenant``); ``ocs renew`` loops it."""

    def __init__(self, ledger_for: LedgerFor) -> None:
        self._ledger_for = ledger_for

    async def run_tenant(self, tenant: Tenant, now: int) -> PassStats:
        ledger = await self._ledger_for(tenant.id)
        stats = PassStats()
        work: list[tuple[str, list[int | str]]] = []
        for start in range(0, keys.VSHARDS, SHARD_BATCH):
            shards = range(start, min(start + SHARD_BATCH, keys.VSHARDS))
            async with ledger.client.pipeline(transaction=False) as pipe:
                for shard in shards:
                    pipe.zrangebyscore(
                        due_key(keys.shard_prefix(tenant.id, shard)),
                        "-inf",
                        now,
                        start=0,
                        num=DUE_PER_SHARD_MAX,
                    )
                due_lists = await pipe.execute()
            members = [
                (shard, m.decode() if isinstance(m, bytes) else m)
                for shard, found in zip(shards, due_lists, strict=True)
                for m in found
            ]
            if not members:
                continue
            async with ledger.client.pipeline(transaction=False) as pipe:
                for shard, member in members:
                    pipe.hget(state_key(keys.shard_prefix(tenant.id, shard)), member)
                states = await pipe.execute()
            work.extend(
                (member, _STATE.decode(raw))
                for (_, member), raw in zip(members, states, strict=True)
                if raw is not None
            )
        stats.due = len(work)
        limit = asyncio.Semaphore(RENEW_CONCURRENCY)

        async def one(member: str, state: list[int | str]) -> None:
            async with limit:
                try:
                    outcome = await self._renew(ledger, tenant, member, state, now)
                except LedgerError:
                    stats.failed += 1
                    return
            if outcome is None:
                stats.unknown += 1
            else:
                stats.add(outcome)

        await asyncio.gather(*(one(member, state) for member, state in work))
        return stats

    async def _renew(
        self, ledger: Ledger, tenant: Tenant, member: str, state: list[int | str], now: int
    ) -> RenewOutcome | None:
        subscriber, _, product = member.partition("|")
        kind, _, product_id = product.partition(":")
        plan = tenant.plan(product_id) if kind == "plan" else None
        if plan is None or plan.cycle is None:
            return None  # left on the index: a catalog that brings the plan back renews it
        cycle_start, anchor = int(state[0]), int(state[3] if len(state) > 3 else state[0])
        pending = tenant.plan(str(state[4])) if len(state) > 4 else None
        # Renewal records name what paid for them: the plan, and the scheduler as source.
        context = RecordContext(
            source="admin",
            msisdn=subscriber,
            currency=tenant.currency,
            source_ref="renew",
            plan=(pending or plan).id,
        )
        if pending is not None and pending.cycle is None:
            # A change noted for this cycle to a plan that does not recur: applied now, no fee.
            await change_plan(
                ledger,
                subscriber,
                PlanChange(
                    from_plan=plan.id,
                    to_plan=pending.id,
                    actor="renewal",
                    old_member=member,
                    old_cycle_start=cycle_start,
                    rule=RULES[tenant.plan_change.buckets],
                    old_kinds=plan_kinds(tenant, plan),
                ),
                now_s=now,
                op_id=f"renew:{member}:{cycle_start}",
                context=context,
            )
            return RenewOutcome.APPLIED
        paying = pending or plan
        assert paying.cycle is not None
        following = next_start(paying.cycle, anchor, max(now, cycle_start), tenant.timezone)
        result = await renew_product(
            ledger,
            subscriber,
            product=product,
            fee=paying.fee,
            buckets=renewal_specs(tenant, paying, cycle_start, following),
            cycle_start=cycle_start,
            next_start=following,
            retry_at=now + tenant.renewal.retry_s,
            grace_s=tenant.renewal.grace_s,
            now_s=now,
            context=context,
            switch_to=None if pending is None else (plan_product(pending.id), plan.id),
        )
        return result.outcome
