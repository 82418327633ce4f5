"""What the ledger must create for a catalog: each subscriber's account with its opening balance
and one bucket instance per allowance of each bundle it starts with.

Pure data: ``now`` (epoch seconds) is given, expiry is ``now`` + the bundle's validity. The
ledger's provisioning API stores these; nothing here touches Redis.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from tariffs.model import Bundle, Tenant, Unit, bucket_kind


class BucketGrant(msgspec.Struct, frozen=True):
    """One bucket instance to create: ``amount`` units of ``kind`` until ``expires_at``."""

    kind: str
    unit: Unit
    amount: int
    priority: int
    expires_at: int
    on_exhaust: str
    bundle: str


class SubscriberProvision(msgspec.Struct, frozen=True):
    tenant: str
    subscriber_id: str  # MSISDN, E.164 digits without "+"
    imsi: str | None
    currency: str
    opening_balance: int  # micro-units
    buckets: tuple[BucketGrant, ...]
    plan: str = ""


def bundle_buckets(bundle: Bundle, now: int) -> tuple[BucketGrant, ...]:
    """The bucket instances one activation of ``bundle`` at ``now`` creates."""
    expires_at = bundle.validity.add_to(now)
    return tuple(
        BucketGrant(
            kind=bucket_kind(bundle.id, allowance.name),
            unit=allowance.unit,
            amount=allowance.amount,
            priority=bundle.priority,
            expires_at=expires_at,
            on_exhaust=bundle.on_exhaust,
            bundle=bundle.id,
        )
        for allowance in bundle.allowances
    )


def subscriber_count(tenant: Tenant) -> int:
    return sum(block.size for block in tenant.ranges) + len(tenant.entries)


def provision_subscribers(tenant: Tenant, now: int) -> Iterator[SubscriberProvision]:
    """Every subscriber of ``tenant`` (ranges expanded, then entries) with its opening state."""
    bundles = {bundle.id: bundle for bundle in tenant.bundles}
    plans = {plan.id: plan for plan in tenant.plans}
    activations: dict[tuple[str, ...], tuple[BucketGrant, ...]] = {}

    def buckets_for(own: tuple[str, ...], plan: str = "") -> tuple[BucketGrant, ...]:
        # The subscriber's own bundles, then its plan's included bundles (each once).
        bundle_ids = own
        if plan:
            bundle_ids += tuple(b for b in plans[plan].bundles if b not in own)
        if bundle_ids not in activations:
            activations[bundle_ids] = tuple(
                grant
                for bundle_id in bundle_ids
                for grant in bundle_buckets(bundles[bundle_id], now)
            )
        return activations[bundle_ids]

    for block in tenant.ranges:
        buckets = buckets_for(block.bundles, block.plan)
        imsi_first, msisdn_first = int(block.imsi_first), int(block.msisdn_first)
        for offset in range(block.size):
            yield SubscriberProvision(
                tenant=tenant.id,
                subscriber_id=str(msisdn_first + offset).zfill(len(block.msisdn_first)),
                imsi=str(imsi_first + offset).zfill(len(block.imsi_first)),
                currency=tenant.currency,
                opening_balance=block.opening_balance,
                buckets=buckets,
                plan=block.plan,
            )
    for entry in tenant.entries:
        yield SubscriberProvision(
            tenant=tenant.id,
            subscriber_id=entry.msisdn,
            imsi=entry.imsi,
            currency=tenant.currency,
            opening_balance=entry.opening_balance,
            buckets=buckets_for(entry.bundles, entry.plan),
            plan=entry.plan,
        )
