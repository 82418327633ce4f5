"""Product activations on the ledger: an add-on purchase or a plan / add-on renewal is one
``grant.lua`` call that charges the fee and adds every bucket of the product, or changes nothing.

Kept apart from ``balance.ledger`` (one concern per module); it uses the ledger's admin-script
runner, so idempotency (op id + content digest), ACL scoping and NOSCRIPT reloads are the same
as for every other account operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import msgspec

from balance import keys
from balance.errors import InvalidRequest
from balance.ledger import _SCRIPTS, Context, Ledger, content_digest
from balance.records import AccountSummary, BucketUnit, OpResult

GRANTS_MAX = 64  # grant.lua's limit: buckets of one activation
_SUMMARY = msgspec.msgpack.Decoder(AccountSummary)


def due_key(prefix: str) -> str:
    """A shard's renewal due index: zset ``<subscriber>|<product>`` -> epoch second due."""
    return f"{prefix}:rn:due"


def state_key(prefix: str) -> str:
    """A shard's renewal state: hash member -> msgpack {cycle_start, state, grace_until,
    anchor_s}."""
    return f"{prefix}:rn:st"


def plan_key(prefix: str) -> str:
    """A shard's plan hash: subscriber -> msgpack {plan, since_s, actor, op_id}, for the
    subscribers whose plan was changed from the catalog's (change_plan.lua, grant.lua)."""
    return f"{prefix}:pl"


def renewal_member(subscriber: str, product: str) -> str:
    return f"{subscriber}|{product}"


class RenewOutcome(IntEnum):
    APPLIED = 0
    REPLAYED = 1
    STALE = 2  # that cycle was renewed already (another scheduler, or an earlier run)
    UNPAID = 3  # grace or suspended; retried later


class RenewalState(IntEnum):
    ACTIVE = 0
    GRACE = 1
    SUSPENDED = 2


class RenewResult(msgspec.Struct, frozen=True):
    outcome: RenewOutcome
    summary: AccountSummary


class Carry(IntEnum):
    """What a new bucket does to the live buckets of its kind already on the account."""

    KEEP = 0  # an add-on bought again: both buckets pay, each until its own expiry
    EXPIRE = 1  # a renewal: the old remainder expires now
    ROLLOVER = 2  # a renewal: the old remainder moves into the new bucket, up to ``cap``


class BucketSpec(msgspec.Struct, frozen=True):
    bucket_id: str
    kind: str
    unit: BucketUnit
    amount: int
    priority: int
    expires_at_s: float  # 0: never
    carry: Carry = Carry.KEEP
    cap: int = 0  # ROLLOVER: the most units carried into the new bucket


def _grants(buckets: Sequence[BucketSpec], least: int = 1) -> list[list[object]]:
    if not least <= len(buckets) <= GRANTS_MAX:
        raise InvalidRequest(f"a product grants 1 to {GRANTS_MAX} buckets")
    return [
        [
            b.bucket_id,
            b.kind,
            b.unit.value,
            b.amount,
            b.priority,
            float(b.expires_at_s),
            int(b.carry),
            b.cap,
        ]
        for b in buckets
    ]


async def grant_product(
    ledger: Ledger,
    subscriber: str,
    *,
    product: str,
    fee: int,
    buckets: Sequence[BucketSpec],
    now_s: float,
    op_id: str | None = None,
    context: Context = None,
) -> OpResult:
    """Charge ``fee`` and add ``buckets`` atomically (InsufficientCredit: nothing changes).

    ``op_id`` makes a retry (or a second scheduler process) apply it once; the same id with a
    different product or fee is an ``OperationConflict``. ``context`` goes on every record."""
    if fee < 0:
        raise InvalidRequest("a product fee must not be negative")
    grants = _grants(buckets)
    # The digest is the intent (product, fee, buckets without their expiry): a retry a second
    # later computes expiries from its own clock, and must replay the purchase, not conflict.
    intent = [grant[:5] + grant[6:] for grant in grants]
    # The ledger's one admin-script runner: same idempotency, ACL scope and reloads.
    return await ledger._admin(
        "grant",
        subscriber,
        op_id,
        now_s,
        product,
        fee,
        ledger.buckets_max,
        grants,
        context=context,
        digest=content_digest("grant", subscriber, product, fee, intent),
    )


async def enroll(
    ledger: Ledger, subscriber: str, product: str, first_start: int, anchor_s: int
) -> bool:
    """Put a recurring product on the shard's due index (first renewal at ``first_start``;
    ``anchor_s``: the activation its cycles count from, e.g. the anniversary day); False when
    the subscriber is enrolled in it already (its schedule is kept)."""
    prefix = keys.subscriber_prefix(ledger.tenant, keys.check_subscriber(subscriber))
    member = renewal_member(subscriber, product)
    state = msgspec.msgpack.encode([first_start, int(RenewalState.ACTIVE), 0, anchor_s])
    # HSETNX then ZADD NX (each idempotent, so no MULTI: tenant users may not run it):
    # re-enrolling never moves a schedule; both keys are in one slot.
    async with ledger.client.pipeline(transaction=False) as pipe:
        pipe.hsetnx(state_key(prefix), member, state)
        pipe.zadd(due_key(prefix), {member: first_start}, nx=True)
        added, _ = await pipe.execute()
    return bool(added)


async def renew_product(
    ledger: Ledger,
    subscriber: str,
    *,
    product: str,
    fee: int,
    buckets: Sequence[BucketSpec],
    cycle_start: int,
    next_start: int,
    retry_at: int,
    grace_s: int,
    now_s: float,
    context: Context = None,
    switch_to: tuple[str, str] | None = None,
) -> RenewResult:
    """Renew ``product`` for the cycle starting at ``cycle_start``: one grant.lua call, op id
    ``renew:<subscriber>:<product>:<cycle_start>`` (several schedulers renew it once).

    ``switch_to`` (new plan product, old plan id): a plan change noted for this cycle; ``fee``
    and ``buckets`` are then the new plan's, and paid, the schedule moves to the new plan."""
    prefix = keys.subscriber_prefix(ledger.tenant, keys.check_subscriber(subscriber))
    op_id = f"renew:{subscriber}:{product}:{cycle_start}"
    member = renewal_member(subscriber, product)
    grants = _grants(buckets, least=0)
    digest = content_digest("grant", subscriber, product, fee, grants, cycle_start, switch_to)
    renewal: list[object] = [member, cycle_start, next_start, retry_at, grace_s]
    if switch_to is not None:
        new_product, old_plan = switch_to
        renewal += [
            renewal_member(subscriber, new_product),
            new_product.partition(":")[2],
            old_plan,
        ]
    payload = [
        op_id,
        digest,
        ledger.tenant,
        subscriber,
        now_s,
        ledger.idempotency_ttl_s,
        product if switch_to is None else switch_to[0],  # the records name what was paid for
        fee,
        ledger.buckets_max,
        grants,
        renewal,
    ]
    key_list = [
        keys.op_key(prefix, op_id),
        keys.account_key(prefix, subscriber),
        keys.stream_key(prefix),
        due_key(prefix),
        state_key(prefix),
        plan_key(prefix),
    ]
    code, raw = await ledger._run(_SCRIPTS["grant"], key_list, payload, context)
    return RenewResult(RenewOutcome(code), _SUMMARY.decode(raw))


class AlreadyOnPlan(InvalidRequest):
    """An immediate change to the plan the subscriber is on: nothing was done (checked after
    the replay check, so a retried change still replays)."""


class BucketRule(IntEnum):
    """What an immediate plan change does to the old plan's live buckets."""

    KEEP = 0  # they stay until their own expiry
    EXPIRE = 1  # their remainder expires now
    REPLACE = 2  # their remainder moves into the new plan's first bucket of the same unit


class PlanChange(msgspec.Struct, frozen=True):
    """One plan change as change_plan.lua applies it (fees already prorated, micro-units)."""

    from_plan: str
    to_plan: str
    actor: str
    at_cycle: bool = False
    old_member: str = ""  # the old plan's renewal member ("" = it does not recur)
    old_cycle_start: int = 0
    charge: int = 0
    credit: int = 0
    rule: BucketRule = BucketRule.EXPIRE
    old_kinds: tuple[str, ...] = ()
    buckets: tuple[BucketSpec, ...] = ()
    new_member: str = ""  # the new plan's renewal member ("" = it does not recur)
    new_next_start: int = 0
    new_anchor: int = 0


async def change_plan(
    ledger: Ledger,
    subscriber: str,
    change: PlanChange,
    *,
    now_s: float,
    op_id: str,
    context: Context = None,
) -> OpResult:
    """Apply ``change`` in one change_plan.lua call, idempotent on ``op_id`` (a retry replays;
    the same id for another change is an ``OperationConflict``)."""
    if change.charge < 0 or change.credit < 0:
        raise InvalidRequest("plan change charge and credit must not be negative")
    grants = [row[:6] for row in _grants(change.buckets, least=0)]
    fields = [
        change.from_plan,
        change.to_plan,
        int(change.at_cycle),
        change.actor,
        change.old_member,
        change.old_cycle_start,
        change.charge,
        change.credit,
        int(change.rule),
        list(change.old_kinds),
        grants,
        ledger.buckets_max,
        change.new_member,
        change.new_next_start,
        change.new_anchor,
    ]
    prefix = keys.subscriber_prefix(ledger.tenant, keys.check_subscriber(subscriber))
    payload = [
        op_id,
        # The intent, not the fees computed for it: a retry a day later is the same change.
        content_digest("change_plan", subscriber, change.to_plan, change.at_cycle, change.actor),
        ledger.tenant,
        subscriber,
        now_s,
        ledger.idempotency_ttl_s,
        *fields,
    ]
    key_list = [
        keys.op_key(prefix, op_id),
        keys.account_key(prefix, subscriber),
        keys.stream_key(prefix),
        due_key(prefix),
        state_key(prefix),
        plan_key(prefix),
    ]
    code, raw = await ledger._run(_SCRIPTS["change_plan"], key_list, payload, context)
    if code == 2:
        raise AlreadyOnPlan(f"the subscriber is on plan {change.to_plan} already")
    return OpResult(_SUMMARY.decode(raw), bool(code))


class CurrentPlan(msgspec.Struct, frozen=True):
    """What the shard says of a subscriber's plan: the plan (the changed one, else the
    catalog's) and its renewal state (next cycle start, state, anchor, noted change)."""

    plan: str
    cycle_start: int = 0
    state: int = 0
    anchor_s: int = 0
    pending: str = ""


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else raw


_PLAN_ROW = msgspec.msgpack.Decoder(tuple[str, float, str, str])
_STATE_ROW = msgspec.msgpack.Decoder(list[int | str])


async def current_plan(ledger: Ledger, subscriber: str, catalog_plan: str) -> CurrentPlan:
    """The subscriber's plan (the shard's plan hash, else ``catalog_plan``) and its renewal
    state, read before a change computes its fees (change_plan.lua checks them again)."""
    prefix = keys.subscriber_prefix(ledger.tenant, keys.check_subscriber(subscriber))
    raw: bytes | str | None = await ledger.client.hget(plan_key(prefix), subscriber)
    plan = _PLAN_ROW.decode(_as_bytes(raw))[0] if raw is not None else catalog_plan
    member = renewal_member(subscriber, f"plan:{plan}")
    state: bytes | str | None = await ledger.client.hget(state_key(prefix), member)
    if state is None:
        return CurrentPlan(plan)
    row = _STATE_ROW.decode(_as_bytes(state))
    ints = [v if isinstance(v, int) else 0 for v in row[:4]]
    pending = row[4] if len(row) > 4 and isinstance(row[4], str) else ""
    return CurrentPlan(plan, ints[0], ints[1], ints[3] if len(row) > 3 else ints[0], pending)


PLAN_READ_BATCH = 128  # shards per pipeline round trip when reading every changed plan


async def read_changed_plan(client: Any, tenant: str, subscriber: str) -> str | None:
    """The plan a change put ``subscriber`` on (None: the catalog's plan applies)."""
    prefix = keys.subscriber_prefix(tenant, keys.check_subscriber(subscriber))
    raw: bytes | str | None = await client.hget(plan_key(prefix), subscriber)
    return None if raw is None else _PLAN_ROW.decode(_as_bytes(raw))[0]


async def read_changed_plans(client: Any, tenant: str) -> dict[str, str]:
    """Every subscriber of ``tenant`` whose plan was changed -> that plan (all 1024 shards,
    pipelined; a tenant's changed subscribers are few next to its base)."""
    out: dict[str, str] = {}
    for start in range(0, keys.VSHARDS, PLAN_READ_BATCH):
        async with client.pipeline(transaction=False) as pipe:
            for shard in range(start, min(start + PLAN_READ_BATCH, keys.VSHARDS)):
                pipe.hgetall(plan_key(keys.shard_prefix(tenant, shard)))
            found: list[dict[Any, Any]] = await pipe.execute()
        for rows in found:
            for field, value in rows.items():
                name = field.decode() if isinstance(field, bytes) else field
                try:
                    out[name] = _PLAN_ROW.decode(_as_bytes(value))[0]
                except msgspec.DecodeError:
                    continue  # not written by the scripts: ignored, never a crash
    return out
