"""Install a catalog's subscribers into the ledger: accounts with opening balances and buckets.

Idempotent per subscriber (operation ids derive from the subscriber). An account that already
exists keeps its balance, so loading a catalog again never resets one; it adds the subscribers
that are new, and to existing accounts only the catalog bundle buckets they lack (an interrupted
load completes on the next run).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from balance.errors import AccountExists, OperationConflict
from balance.ledger import Ledger
from balance.records import BucketUnit, RecordContext
from ocs.renewal import enroll_provisions
from tariffs.model import Catalog
from tariffs.provisioning import SubscriberProvision, provision_subscribers

LOAD_CONCURRENCY = 64
BUCKET_UNITS = {"byte": BucketUnit.BYTES, "second": BucketUnit.SECONDS, "event": BucketUnit.EVENTS}

LedgerFor = Callable[[str], Awaitable[Ledger]]


async def install_subscriber(ledger: Ledger, provision: SubscriberProvision, now: int) -> bool:
    """Create the account and its opening buckets; False if the account was already there.

    Buckets are added even for an existing account, each refused as a duplicate (by its bucket
    id) when present: a load interrupted between the account and its buckets completes on the
    next run instead of leaving the subscriber without its bundle.
    """
    subscriber = provision.subscriber_id
    context = RecordContext(source="admin", msisdn=subscriber, source_ref="catalog-load")
    created = True
    try:
        result = await ledger.provision_account(
            subscriber,
            balance=provision.opening_balance,
            now_s=now,
            op_id=f"catalog-load:{subscriber}",
            context=context,
        )
        created = not result.replayed
    except (AccountExists, OperationConflict):
        # Exists, or was installed by an earlier load with other opening values: left as is.
        created = False
    for bucket in provision.buckets:
        try:
            await ledger.add_bucket(
                subscriber,
                bucket_id=f"{bucket.kind}#catalog",
                kind=bucket.kind,
                unit=BUCKET_UNITS[bucket.unit],
                amount=bucket.amount,
                now_s=now,
                priority=bucket.priority,
                expires_at_s=bucket.expires_at,
                op_id=f"catalog-load:{subscriber}:{bucket.kind}",
                context=context,
            )
        except (AccountExists, OperationConflict):
            continue  # this bucket id is there already (a bundle's expiry moves with `now`)
    return created


async def install_catalog(
    catalog: Catalog, ledger_for: LedgerFor, *, now: int
) -> dict[str, tuple[int, int]]:
    """Every tenant's subscribers; returns ``{tenant: (created, already_present)}``."""
    report: dict[str, tuple[int, int]] = {}
    for tenant in catalog.tenants:
        ledger = await ledger_for(tenant.id)
        created = kept = 0
        pending = list(provision_subscribers(tenant, now))
        for start in range(0, len(pending), LOAD_CONCURRENCY):
            batch = pending[start : start + LOAD_CONCURRENCY]
            outcomes = await asyncio.gather(*(install_subscriber(ledger, p, now) for p in batch))
            # Recurring plans: each subscriber on the due index, first renewal one cycle on.
            await enroll_provisions(ledger, tenant, batch, now)
            created += sum(outcomes)
            kept += len(outcomes) - sum(outcomes)
        report[tenant.id] = (created, kept)
    return report
