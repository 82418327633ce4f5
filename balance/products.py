"""Product activations on the ledger: an add-on purchase or a plan / add-on renewal is one
``grant.lua`` call that charges the fee and adds every bucket of the product, or changes nothing.

Kept apart from ``balance.ledger`` (one concern per module); it uses the ledger's admin-script
runner, so idempotency (op id + content digest), ACL scoping and NOSCRIPT reloads are the same
as for every other account operation.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

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
) -> RenewResult:
    """Renew ``product`` for the cycle starting at ``cycle_start``: one grant.lua call, op id
    ``renew:<subscriber>:<product>:<cycle_start>`` (several schedulers renew it once)."""
    prefix = keys.subscriber_prefix(ledger.tenant, keys.check_subscriber(subscriber))
    op_id = f"renew:{subscriber}:{product}:{cycle_start}"
    member = renewal_member(subscriber, product)
    grants = _grants(buckets, least=0)
    digest = content_digest("grant", subscriber, product, fee, grants, cycle_start)
    payload = [
        op_id,
        digest,
        ledger.tenant,
        subscriber,
        now_s,
        ledger.idempotency_ttl_s,
        product,
        fee,
        ledger.buckets_max,
        grants,
        [member, cycle_start, next_start, retry_at, grace_s],
    ]
    key_list = [
        keys.op_key(prefix, op_id),
        keys.account_key(prefix, subscriber),
        keys.stream_key(prefix),
        due_key(prefix),
        state_key(prefix),
    ]
    code, raw = await ledger._run(_SCRIPTS["grant"], key_list, payload, context)
    return RenewResult(RenewOutcome(code), _SUMMARY.decode(raw))
