"""Catalog products applied to accounts: an add-on bought, later a plan or add-on renewed.

Joins the catalog (``tariffs``: which bundles, at what fee, for how long) and the ledger
(``balance.products``: fee and buckets in one atomic call). Pure mapping plus one ledger call.
"""

from __future__ import annotations

import hashlib

from balance.ledger import Context, Ledger
from balance.products import BucketSpec, Carry, grant_product
from balance.records import BucketUnit, OpResult
from tariffs.model import Bundle, Tenant
from tariffs.provisioning import bundle_buckets

BUCKET_UNITS = {"byte": BucketUnit.BYTES, "second": BucketUnit.SECONDS, "event": BucketUnit.EVENTS}


class ProductRefused(ValueError):
    """The catalog does not offer this product to this subscriber; the message says why."""


def activation_tag(op_id: str) -> str:
    """A short, stable bucket-id suffix for one activation (the same op id, the same buckets)."""
    return hashlib.sha1(op_id.encode("utf-8")).hexdigest()[:12]


def bundle_specs(
    bundle: Bundle,
    now_s: int,
    tag: str,
    *,
    carry: Carry = Carry.KEEP,
    caps: dict[str, int] | None = None,
    expires_at_s: int | None = None,
) -> list[BucketSpec]:
    """The ledger buckets of one activation of ``bundle`` at ``now_s``."""
    specs = []
    for grant in bundle_buckets(bundle, now_s):
        specs.append(
            BucketSpec(
                bucket_id=f"{grant.kind}#{tag}",
                kind=grant.kind,
                unit=BUCKET_UNITS[grant.unit],
                amount=grant.amount,
                priority=grant.priority,
                expires_at_s=float(grant.expires_at if expires_at_s is None else expires_at_s),
                carry=carry,
                cap=(caps or {}).get(grant.kind, 0),
            )
        )
    return specs


def addon_of(tenant: Tenant, addon_id: str) -> Bundle:
    """The add-on bundle ``addon_id`` of ``tenant``, or ProductRefused naming what exists."""
    bundle = tenant.bundle(addon_id) if addon_id in tenant.addons else None
    if bundle is None:
        offered = ", ".join(tenant.addons) or "none"
        raise ProductRefused(
            f"tenant {tenant.id!r} offers no add-on {addon_id!r} (add-ons: {offered})"
        )
    return bundle


async def buy_addon(
    ledger: Ledger,
    tenant: Tenant,
    subscriber: str,
    addon_id: str,
    *,
    now_s: int,
    op_id: str,
    context: Context = None,
) -> OpResult:
    """Charge the add-on's fee and grant its buckets, in one ledger call (idempotent on op_id);
    InsufficientCredit (4012) when the balance cannot pay: nothing is granted."""
    bundle = addon_of(tenant, addon_id)
    return await grant_product(
        ledger,
        subscriber,
        product=f"addon:{bundle.id}",
        fee=bundle.fee,
        buckets=bundle_specs(bundle, now_s, activation_tag(op_id)),
        now_s=now_s,
        op_id=op_id,
        context=context,
    )
