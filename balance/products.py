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

from balance.errors import InvalidRequest
from balance.ledger import Ledger
from balance.records import BucketUnit, OpResult

GRANTS_MAX = 64  # grant.lua's limit: buckets of one activation


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


async def grant_product(
    ledger: Ledger,
    subscriber: str,
    *,
    product: str,
    fee: int,
    buckets: Sequence[BucketSpec],
    now_s: float,
    op_id: str | None = None,
) -> OpResult:
    """Charge ``fee`` and add ``buckets`` atomically (InsufficientCredit: nothing changes).

    ``op_id`` makes a retry (or a second scheduler process) apply it once; the same id with a
    different product or fee is an ``OperationConflict``."""
    if fee < 0:
        raise InvalidRequest("a product fee must not be negative")
    if not 1 <= len(buckets) <= GRANTS_MAX:
        raise InvalidRequest(f"a product grants 1 to {GRANTS_MAX} buckets")
    grants = [
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
    # The ledger's one admin-script runner: same idempotency, ACL scope and reloads.
    return await ledger._admin(
        "grant", subscriber, op_id, now_s, product, fee, ledger.buckets_max, grants
    )
